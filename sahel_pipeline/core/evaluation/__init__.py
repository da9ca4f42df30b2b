"""A standing evaluation of escalation detectors on series with known truth and on the real files.

Modules, in the order a run uses them:

- `simulate`: the scenarios (stable negative-binomial series, step rises, a regime change, a renamed state force,
  heavy-tailed fatalities) as `CountSeries` with the truth of every month and their in-control distribution;
- `detectors`: the interface every detector implements, the pipeline's current rule and the oracle;
- `peers`: ACLED's Trendfinder, Surge and Threat rules and HDX Signals' rule, written here;
- `surveillance`: R `surveillance`'s farringtonFlexible, glrnb and earsC, run in one `Rscript` process;
- `real`: series cut from the panels, the known episodes and the alert burden on real data;
- `metrics`: false alarms, detection, delays, thresholds matched to a false-alarm rate;
- `methods`: the methods page (Markdown and HTML);
- `run`: `run_evaluation`, which ties them together, and `write_evaluation`.
"""
