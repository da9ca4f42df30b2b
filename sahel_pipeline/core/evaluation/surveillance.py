"""R `surveillance`'s detectors, run on the same series through `Rscript` (`surveillance_peers.R`): a few processes
for all the series, the data passed as CSV files, so that R's start-up does not dominate.

Peers and their settings (monthly data, so Farrington's reference years are b = 3 of 12 months, the pipeline's 36):

- **farrington**: `farringtonFlexible` with Farrington's settings as in the package's `monitoringCounts` vignette
  (w = 3, reweighting above 1, a trend when significant at 5%, no extra periods, the 2/3-power "delta" threshold,
  the package's alpha = 0.05 and its rule of at least 5 cases in the last 4 periods).
- **noufaily**: the same function with Noufaily's settings (re-weighting above 2.58, trend always tried,
  negative-binomial plug-in threshold, the last 26 weeks left out: 6 months here, and the year split into periods).
- **glrnb**: the negative-binomial GLR-CUSUM for a rise in the intercept, with its in-control mean and dispersion
  estimated on the 36 months before the first judged month (intercept only) and the package's threshold c.ARL = 5; it
  restarts after every alarm, so its alarms at other thresholds come from a grid of c.ARL, computed by the same
  recursion in numpy (`glr_matrix`, `glr_run`) on R's in-control mean and dispersion and checked equal to R's run.
- **ears_c1, ears_c2, ears_c3**: `earsC` with its defaults (baseline of 7 periods, minSigma 0, alpha 0.001 for C1 and
  C2, 0.025 for C3); **ears_c3_corrected**: C3 as the CDC defines it, computed from C2's reference statistics.

The quirks of the version Debian ships (1.20.3) that this evaluation found and works around are in QUIRKS (the
methods page lists them); each is shown on a small case in the tests.
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy import special

from sahel_pipeline.core.evaluation.detectors import (
    DETECTION_SCHEMA,
    GRID_SCHEMA,
    Detection,
    Log,
    detection_frame,
)
from sahel_pipeline.core.evaluation.simulate import CountSeries

SCRIPT = Path(__file__).with_name("surveillance_peers.R")
QUIRKS = (
    "farringtonFlexible(noPeriods = 10), Noufaily's weekly setting, silently mislabels the periods of monthly data: "
    "blocks() splits the 12 - (2w + 1) = 5 months outside the window into noPeriods - 1 = 9 periods, and an empty "
    "period's a:(a - 1) counts down, writing its label over the next window's first month (its guard compares the "
    "wrong quantities and passes). Worked around with noPeriods = 12 - 2w = 6: one period per month outside the "
    "window, as 10 periods are for weekly data (a 7-week window and nine 5-week periods).",
    'farringtonFlexible fails on a range with gaps ("subscript out of bounds"): it sizes its outputs by '
    "length(range) and indexes them by k - min(range) + 1. Worked around by one call per run of consecutive months.",
    "farringtonFlexible passes the quasi-Poisson dispersion phi = max(1, estimate) to predict.glm inside newdata, "
    "where it is ignored: the fitted mean's standard error uses the raw estimate, below 1 on underdispersed "
    "reference values. Kept as shipped (it is the peer's behaviour), and reproduced in the hand check.",
    'farringtonFlexible with thresholdMethod = "nbPlugin" computes its score against the linear predictor (the '
    "log of the expected count); the alarm is right. Worked around by using its p-value as the statistic.",
    'earsC(method = "C3") ignores the month it judges: its bound is the observed count plus sd x (z - the two '
    "previous months' excess), so it alarms exactly when those two months' excess max(0, C2 - 1) sums above z, "
    "whatever the month holds (any non-zero count): a spike is never flagged in its own month, and the month after "
    "a burst is flagged even when it is back to normal. Shown as shipped, and worked around by ears_c3_corrected, "
    "which adds the month's own excess as the CDC's C3 does.",
    "glrnb: left to the package, the in-control mean has a seasonal harmonic (mu0$S = 1), wrong for conflict "
    "series; given mu0 as a vector, alpha must be given too (the control list is not merged with the documented "
    'alpha = 0, and the call fails with "argument is of length zero"); ret defaults to "value" though the '
    'signature lists "cases" first. Worked around with mu0 = list(S = 0, trend = FALSE) and ret = "value".',
)
RESULT_SCHEMA: dict[str, pl.DataType] = {
    "peer": pl.String(),
    "series_id": pl.String(),
    "t": pl.Int32(),
    "alarm": pl.Boolean(),
    "upperbound": pl.Float64(),
    "pvalue": pl.Float64(),
    "expected": pl.Float64(),
    "dispersion": pl.Float64(),
}
INSTALL_HINT = "Debian: apt-get install r-base-core r-cran-surveillance (scripts/ensure_r.sh does it as root)"


@dataclass(frozen=True)
class RPeer:
    name: str
    label: str
    kind: str  # farrington | glrnb | ears: which R function
    control: dict
    description: str

    def value(self, key: str):
        return self.control[key]


def _z(alpha: float) -> float:
    return float(special.ndtri(1 - alpha))


FARRINGTON = RPeer(
    "farrington",
    "Farrington (farringtonFlexible)",
    "farrington",
    {
        "b": 3,
        "w": 3,
        "reweight": True,
        "weightsThreshold": 1,
        "trend": True,
        "pThresholdTrend": 0.05,
        "noPeriods": 1,
        "pastWeeksNotIncluded": 3,
        "thresholdMethod": "delta",
        "powertrans": "2/3",
        "alpha": 0.05,
        "limit54": (5, 4),
        "glmWarnings": False,
    },
    "R surveillance farringtonFlexible, Farrington's settings: b = 3 years, w = 3, re-weighting above 1, trend if "
    "significant at 5%, delta-method (2/3 power) threshold at alpha 0.05, at least 5 cases in the last 4 months. "
    "Statistic: -log10 of its p-value.",
)
NOUFAILY = RPeer(
    "noufaily",
    "Noufaily (farringtonFlexible)",
    "farrington",
    # Farrington's, with what Noufaily et al. (2013) changed
    {
        **FARRINGTON.control,
        "weightsThreshold": 2.58,
        "pThresholdTrend": 1,
        "noPeriods": 6,
        "pastWeeksNotIncluded": 6,
        "thresholdMethod": "nbPlugin",
    },
    "R surveillance farringtonFlexible, Noufaily's settings: b = 3 years, w = 3, re-weighting above 2.58, trend "
    "always tried, the last 6 months (Noufaily's 26 weeks) left out, the year in 6 periods (not 10: see QUIRKS), "
    "negative-binomial plug-in threshold at alpha 0.05. Statistic: -log10 of its p-value.",
)
GLRNB = RPeer(
    "glrnb",
    "NB GLR-CUSUM (glrnb)",
    "glrnb",
    {
        "c.ARL": 5,
        "mu0$S": 0,
        "mu0$trend": False,
        "mu0$refit": False,
        "Mtilde": 1,
        "M": -1,
        "change": "intercept",
        "dir": "inc",
        "ret": "value",
        "phase1": 36,
    },
    "R surveillance glrnb: negative-binomial GLR-CUSUM for a rise, in-control mean and dispersion from an "
    "intercept-only glm.nb on the 36 months before the first judged month (mu0 without the package's seasonal "
    "term), c.ARL = 5, restarting after each alarm. Threshold: c.ARL; other thresholds by the same recursion in "
    "numpy, checked equal to R's at 5.",
)


def _ears_peer(method: str, alpha: float, label: str, description: str) -> RPeer:
    """earsC with its defaults: a baseline of 7 periods, no minimum sd."""
    control = {"method": method, "baseline": 7, "minSigma": 0, "alpha": alpha}
    return RPeer(f"ears_{method.lower()}", label, "ears", control, description)


EARS_C1 = _ears_peer(
    "C1",
    0.001,
    "EARS C1 (earsC)",
    "R surveillance earsC C1: the month against the mean and sd of the "
    "7 months before, alpha 0.001. Statistic: (count - mean) / sd.",
)
EARS_C2 = _ears_peer(
    "C2",
    0.001,
    "EARS C2 (earsC)",
    "R surveillance earsC C2: as C1 with a 2-month guard band (months 3 to 9 before). Statistic: (count - mean) / sd.",
)
EARS_C3 = _ears_peer(
    "C3",
    0.025,
    "EARS C3 (earsC, as shipped)",
    "R surveillance earsC C3 as shipped, alpha 0.025 (it "
    "ignores the judged month: see QUIRKS). Statistic: the two previous months' excess max(0, C2 - 1) "
    "summed, from C2's reference values, checked equal to R's alarms.",
)
C3_CORRECTED = "ears_c3_corrected"
C3_CORRECTED_LABEL = "EARS C3 (corrected: the month included)"
C3_CORRECTED_DESCRIPTION = (
    "EARS C3 as the CDC defines it (the shipped C3's quirk worked around): the sum over the month and the two "
    "before of max(0, C2 - 1), from earsC C2's reference mean and sd, against z = 1.96 (alpha 0.025). Statistic: "
    "that sum."
)
R_PEERS = {p.name: p for p in (FARRINGTON, NOUFAILY, GLRNB, EARS_C1, EARS_C2, EARS_C3)}
ALL_R_PEERS = (*R_PEERS, C3_CORRECTED)


def r_status() -> tuple[str | None, str | None]:
    """(surveillance's version, None) when R and the package are there, else (None, why not)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None, f"Rscript is not on PATH ({INSTALL_HINT})"
    try:
        probe = subprocess.run(
            [rscript, "--vanilla", "-e", "cat(as.character(packageVersion('surveillance')))"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"Rscript could not be run: {err}"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"the R package surveillance is not installed ({last}; {INSTALL_HINT})"
    return probe.stdout.strip(), None


@dataclass
class SurveillancePeers:
    """Every requested R peer, the series split over `processes` Rscript processes; without R, each is returned
    skipped with the reason."""

    peers: tuple[str, ...] = ALL_R_PEERS
    processes: int = 2
    disabled: str | None = None  # why not to run them at all (the user said so)
    name: str = "r_surveillance"
    label: str = "R surveillance peers"
    indicators: tuple[str, ...] | None = None
    needs_truth: bool = False
    background: bool = True  # R runs in its own processes: the evaluation does other work meanwhile
    version: str | None = field(default=None, init=False)

    def __post_init__(self):
        unknown = sorted(set(self.peers) - set(ALL_R_PEERS))
        if unknown:
            raise ValueError(f"unknown R peer(s) {', '.join(unknown)}; known: {', '.join(ALL_R_PEERS)}")

    def runs(self) -> list[RPeer]:
        """The R runs the requested peers need (both C3s are computed from C2's reference statistics)."""
        wanted = set(self.peers) - {C3_CORRECTED}
        if {EARS_C3.name, C3_CORRECTED} & set(self.peers):
            wanted.add(EARS_C2.name)
        return [p for name, p in R_PEERS.items() if name in wanted]

    def labels(self) -> dict[str, str]:
        return {p: C3_CORRECTED_LABEL if p == C3_CORRECTED else R_PEERS[p].label for p in self.peers}

    def descriptions(self) -> dict[str, str]:
        return {p: C3_CORRECTED_DESCRIPTION if p == C3_CORRECTED else R_PEERS[p].description for p in self.peers}

    @property
    def description(self) -> str:
        return "; ".join(self.descriptions().values())

    def detect(self, series: list[CountSeries], log: Log) -> list[Detection]:
        self.version, reason = (None, self.disabled) if self.disabled else r_status()
        if reason is not None:
            log(f"R peers skipped: {reason}")
            return [
                Detection(name, label, pl.DataFrame(schema=DETECTION_SCHEMA), skipped=reason)
                for name, label in self.labels().items()
            ]
        runs = self.runs()
        groups = [g for g in (series[i :: max(1, self.processes)] for i in range(max(1, self.processes))) if g]
        with tempfile.TemporaryDirectory(prefix="sahel-surveillance-") as root:
            folders = [Path(root) / str(i) for i in range(len(groups))]
            jobs = 0
            for folder, group in zip(folders, groups, strict=True):
                folder.mkdir()
                jobs += _write_inputs(folder, group, runs)
            log(
                f"R surveillance {self.version}: {', '.join(p.name for p in runs)} on {len(series):,} series "
                f"({jobs:,} peer-months) in {len(folders)} Rscript process(es)"
            )
            errors = _run(folders, log)
            results = pl.concat([pl.read_csv(f / "results.csv", schema=RESULT_SCHEMA) for f in folders])
        notes = _error_notes(errors, log)
        by_id = {s.id: s for s in series}
        rows = {p.name: results.filter(pl.col("peer") == p.name).sort("series_id", "t") for p in runs}
        out = []
        for name in self.peers:
            if name in (EARS_C3.name, C3_CORRECTED):
                detection = _c3(rows[EARS_C2.name], rows.get(EARS_C3.name), by_id, corrected=name == C3_CORRECTED)
            elif R_PEERS[name].kind == "glrnb":
                detection = _glrnb(rows[name], by_id)
            elif R_PEERS[name].kind == "farrington":
                detection = _farrington(R_PEERS[name], rows[name], by_id)
            else:
                detection = _ears(R_PEERS[name], rows[name], by_id)
            detection.note = "; ".join(
                n for n in (notes.get(EARS_C2.name if name == C3_CORRECTED else name), detection.note) if n
            )
            out.append(detection)
        return out


def _jobs(peer: RPeer, s: CountSeries) -> list[int]:
    """1-based months the peer judges in a series: the judged months it has the history for."""
    first = s.first_scored + 1
    n = len(s.counts)
    if peer.kind == "farrington":
        start = max(first, 12 * peer.value("b") + peer.value("w") + 1)
        cases, periods = peer.value("limit54")
        recent = np.convolve(s.counts, np.ones(periods))[:n]
        # months its own rule excludes (fewer than 5 cases in the last 4 months) cannot alarm: not fitted
        return [t for t in range(start, n + 1) if recent[t - 1] >= cases]
    if peer.kind == "glrnb":
        before = s.counts[max(0, first - 1 - peer.value("phase1")) : first - 1]
        return list(range(first, n + 1)) if len(before) >= 12 and before.sum() > 0 else []
    lag = {"C1": 1, "C2": 3, "C3": 5}[peer.value("method")]
    # C2 from two months earlier: C3 at a month reads C2 at the two months before
    start = max(first - (2 if peer.value("method") == "C2" else 0), peer.value("baseline") + lag)
    return list(range(start, n + 1))


def _write_inputs(folder: Path, series: list[CountSeries], peers: list[RPeer]) -> int:
    with open(folder / "series.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["series_id", "count"])
        for s in series:
            writer.writerows((s.id, int(c)) for c in s.counts)
    jobs = [(p.name, s.id, t) for p in peers for s in series for t in _jobs(p, s)]
    with open(folder / "jobs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["peer", "series_id", "t"])
        writer.writerows(jobs)
    with open(folder / "controls.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["peer", "key", "value", "type"])
        for p in peers:
            writer.writerow([p.name, "kind", p.kind, "character"])
            writer.writerows([p.name, key, *_r_value(value)] for key, value in p.control.items())
    return len(jobs)


def _r_value(value) -> tuple[str, str]:
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), "logical"
    if isinstance(value, int | float):
        return repr(value), "numeric"
    if isinstance(value, tuple):
        return ",".join(repr(v) for v in value), "numeric"
    return str(value), "character"


def _run(folders: list[Path], log: Log) -> list[str]:
    """Run the script on each folder at once, relaying progress; returns the per-series error lines. A failure of R
    itself raises with the end of its output."""
    rscript = shutil.which("Rscript") or "Rscript"
    processes = [
        subprocess.Popen(
            [rscript, "--vanilla", str(SCRIPT), str(f)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for f in folders
    ]
    errors: list[str] = []
    tails: list[list[str]] = [[] for _ in processes]

    def relay(k: int) -> None:
        stream = processes[k].stderr
        assert stream is not None  # opened with stderr=PIPE
        for line in stream:
            line = line.rstrip()
            if line.startswith("progress "):
                _, peer, done, total = line.split()
                log(
                    f"R surveillance {peer}: {done} of {total} series"
                    + (f" (process {k + 1})" if len(processes) > 1 else "")
                )
            elif line.startswith("error "):
                errors.append(line[len("error ") :])
            elif line:
                tails[k] = (tails[k] + [line])[-5:]

    readers = [threading.Thread(target=relay, args=(k,), daemon=True) for k in range(len(processes))]
    for reader in readers:
        reader.start()
    for process, reader in zip(processes, readers, strict=True):
        process.wait()
        reader.join()
    for process, folder, tail in zip(processes, folders, tails, strict=True):
        if process.returncode != 0 or not (folder / "results.csv").exists():
            raise RuntimeError(
                f"Rscript {SCRIPT.name} failed (exit {process.returncode}): {' | '.join(tail) or 'no output'}"
            )
    return errors


def _error_notes(errors: list[str], log: Log) -> dict[str, str]:
    """One line per peer: how many series R could not judge, and the first reason."""
    by_peer: dict[str, list[str]] = {}
    for line in errors:
        peer, _, rest = line.partition(" ")
        by_peer.setdefault(peer, []).append(rest)
    notes = {}
    for peer, lines in by_peer.items():
        notes[peer] = f"{len(lines)} series not judged (R error), e.g. {lines[0]}"
        log(f"R surveillance {peer}: {notes[peer]}")
    return notes


def _judged(rows: pl.DataFrame, by_id: dict[str, CountSeries]) -> pl.DataFrame:
    """R's rows with a 0-based index, the observed count, and only the months detectors are judged on."""
    first = pl.DataFrame({"series_id": list(by_id), "first": [s.first_scored for s in by_id.values()]})
    observed = np.array([by_id[i].counts[t - 1] for i, t in rows.select("series_id", "t").iter_rows()], dtype=float)
    return (
        rows.with_columns(index=pl.col("t") - 1, observed=pl.Series(observed, dtype=pl.Float64))
        .join(first, on="series_id")
        .filter(pl.col("index") >= pl.col("first"))
    )


def _column(rows: pl.DataFrame, name: str) -> np.ndarray:
    return rows[name].fill_null(np.nan).to_numpy().astype(float)


def _farrington(peer: RPeer, rows: pl.DataFrame, by_id: dict[str, CountSeries]) -> Detection:
    rows = _judged(rows, by_id)
    p, upper, y = _column(rows, "pvalue"), _column(rows, "upperbound"), _column(rows, "observed")
    judged = ~np.isnan(upper) & ~np.isnan(p) & (y > 0)  # its 5-in-4 rule (no bound without it) and "observed != 0"
    with np.errstate(divide="ignore"):
        statistic = np.where(judged, -np.log10(p), -np.inf)
    frame = detection_frame(
        rows["series_id"].to_list(), rows["index"].to_list(), rows["alarm"].fill_null(False).to_numpy(), statistic, p
    )
    return Detection(peer.name, peer.label, frame, default_threshold=-math.log10(peer.value("alpha")))


def ears_z(y: np.ndarray, upper: np.ndarray, mean: np.ndarray, alpha: float) -> np.ndarray:
    """earsC's C1/C2 statistic (count - mean) / sd of the reference months, read back from its bounds at alpha and
    at 0.5 (the mean); with sd 0 it is +-inf, or nan when the count equals the mean, as R computes it."""
    sd = (upper - mean) / _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, (y - mean) / np.where(sd > 0, sd, 1.0), (y - mean) / 0.0)


def _ears(peer: RPeer, rows: pl.DataFrame, by_id: dict[str, CountSeries]) -> Detection:
    rows = _judged(rows, by_id)
    z = ears_z(_column(rows, "observed"), _column(rows, "upperbound"), _column(rows, "expected"), peer.value("alpha"))
    frame = detection_frame(
        rows["series_id"].to_list(),
        rows["index"].to_list(),
        rows["alarm"].fill_null(False).to_numpy(),
        np.nan_to_num(z, nan=-np.inf),
    )
    return Detection(peer.name, peer.label, frame, default_threshold=_z(peer.value("alpha")))


C3_SCHEMA: dict[str, pl.DataType] = {
    "series_id": pl.String(),
    "t": pl.Int32(),
    "shipped": pl.Float64(),
    "corrected": pl.Float64(),
}


def c3_statistics(c2: pl.DataFrame, by_id: dict[str, CountSeries]) -> pl.DataFrame:
    """Per month (from the third C2 month on): the shipped C3's statistic (the two previous months' excess
    max(0, C2 - 1); -inf where its bound cannot be passed: sd 0 or a zero count) and the CDC's C3 (that plus the
    month's own excess), with nan propagating as R's pmax does."""
    parts = []
    for (sid,), rows in c2.group_by(["series_id"], maintain_order=True):
        rows = rows.sort("t")
        t = rows["t"].to_numpy()
        y = by_id[sid].counts[t - 1].astype(float)
        upper, mean = _column(rows, "upperbound"), _column(rows, "expected")
        c2_z = ears_z(y, upper, mean, EARS_C2.value("alpha"))
        excess = np.maximum(0.0, c2_z - 1)  # nan stays nan
        previous = np.full(len(t), np.nan)
        previous[2:] = excess[1:-1] + excess[:-2]
        consecutive = np.zeros(len(t), dtype=bool)
        consecutive[2:] = t[2:] - t[:-2] == 2
        sd_positive = (upper - mean) > 0
        shipped = np.where(consecutive & sd_positive & (y > 0), np.nan_to_num(previous, nan=-np.inf), -np.inf)
        corrected = np.where(consecutive, np.nan_to_num(previous + excess, nan=-np.inf), -np.inf)
        parts.append(
            pl.DataFrame({"series_id": sid, "t": t, "shipped": shipped, "corrected": corrected}, schema=C3_SCHEMA)
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=C3_SCHEMA)


def _c3(c2: pl.DataFrame, c3: pl.DataFrame | None, by_id: dict[str, CountSeries], corrected: bool) -> Detection:
    z = _z(EARS_C3.value("alpha"))
    threshold = float(np.nextafter(z, np.inf))  # both alarm when the sum exceeds z
    stats = _judged(c3_statistics(c2, by_id), by_id)
    statistic = _column(stats, "corrected" if corrected else "shipped")
    frame = detection_frame(stats["series_id"].to_list(), stats["index"].to_list(), statistic >= threshold, statistic)
    if corrected:
        return Detection(C3_CORRECTED, C3_CORRECTED_LABEL, frame, default_threshold=threshold)
    # the shipped C3's alarms are R's; the statistic reproduces them, and any month where it does not is reported
    if c3 is None:
        raise ValueError("the shipped C3 needs its R run")
    r_alarms = _judged(c3, by_id).select("series_id", "index", r_alarm=pl.col("alarm").fill_null(False))
    frame = frame.join(r_alarms, on=["series_id", "index"], how="inner")
    differ = int((frame["alarm"] != frame["r_alarm"]).sum())
    frame = frame.with_columns(alarm=pl.col("r_alarm")).drop("r_alarm")
    note = f"the statistic differs from R's alarm in {differ} month(s)" if differ else ""
    return Detection(EARS_C3.name, EARS_C3.label, frame, default_threshold=threshold, note=note)


# --- glrnb's recursion, for its alarms at thresholds other than the one R ran at ------------------------------------

GLR_GRID = tuple(sorted({5.0, *np.round(np.geomspace(0.5, 40, 64), 4).tolist()}))


def glr_matrix(x: np.ndarray, mu: float, alpha: float) -> np.ndarray:
    """G[k, t]: the negative-binomial GLR for a rise in the intercept over months k..t against a constant in-control
    mean mu: the log-likelihood ratio at the window's own mean when it is above mu, else 0 (-inf for k > t). With
    a constant mu0 the maximising rate is the window's mean, so glrnb's per-window Newton steps have this closed
    form."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    k, t = np.arange(n)[:, None], np.arange(n)[None, :]
    total, months = cumulative[t + 1] - cumulative[k], (t - k + 1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / months
        g = total * np.log(mean / mu) - (total + months / alpha) * np.log((1 + alpha * mean) / (1 + alpha * mu))
    return np.where(t >= k, np.where(mean > mu, g, 0.0), -np.inf)


def glr_run(G: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """glrnb with window M = -1 and restart after each alarm: (alarm, statistic) per month at threshold h."""
    best = np.maximum.accumulate(G[::-1], axis=0)[::-1]  # best[k, t]: the best window starting at k or later
    n = G.shape[0]
    alarm, value = np.zeros(n, dtype=bool), np.zeros(n)
    start = 0
    while start < n:
        segment = best[start, start:]
        hits = np.flatnonzero(segment >= h)
        stop = start + (hits[0] + 1 if hits.size else len(segment))
        value[start:stop] = segment[: stop - start]
        if not hits.size:
            break
        alarm[stop - 1] = True
        start = stop
    return alarm, value


def _glrnb(rows: pl.DataFrame, by_id: dict[str, CountSeries]) -> Detection:
    """R's glrnb at its c.ARL, and at every threshold of GLR_GRID by glr_run on R's mu0 and alpha. Series whose
    recursion does not reproduce R's statistic at c.ARL keep R's alarms only (reported)."""
    default = float(GLRNB.value("c.ARL"))
    grid_parts, differ = [], []
    for (sid,), part in rows.group_by(["series_id"], maintain_order=True):
        part = part.sort("t")
        s = by_id[sid]
        x = s.counts[part["t"].to_numpy() - 1]
        mu0, alpha = _column(part, "expected"), _column(part, "dispersion")
        G = glr_matrix(x, float(mu0[0]), float(alpha[0]))
        alarm, value = glr_run(G, default)
        r_alarm = part["alarm"].fill_null(False).to_numpy()
        if (
            np.ptp(mu0) > 1e-9 * mu0[0]
            or not np.array_equal(alarm, r_alarm)
            or not np.allclose(value, _column(part, "upperbound"), rtol=1e-6, atol=1e-8)
        ):
            differ.append(sid)
        else:
            index = part["t"].to_numpy() - 1
            alarms = np.concatenate([glr_run(G, h)[0] for h in GLR_GRID])
            grid_parts.append(
                pl.DataFrame(
                    {
                        "series_id": sid,
                        "index": np.tile(index, len(GLR_GRID)),
                        "threshold": np.repeat(GLR_GRID, len(index)),
                        "alarm": alarms,
                    },
                    schema=GRID_SCHEMA,
                )
            )
    judged = _judged(rows, by_id)
    frame = detection_frame(
        judged["series_id"].to_list(),
        judged["index"].to_list(),
        judged["alarm"].fill_null(False).to_numpy(),
        _column(judged, "upperbound"),
    )
    grid = pl.concat(grid_parts) if grid_parts else pl.DataFrame(schema=GRID_SCHEMA)
    firsts = {s.id: s.first_scored for s in by_id.values()}
    grid = grid.filter(pl.col("index") >= pl.col("series_id").replace_strict(firsts, return_dtype=pl.Int32))
    note = (
        f"{len(differ)} series' recursion did not match R's statistic (R's alarms kept, no other thresholds)"
        if differ
        else ""
    )
    return Detection(GLRNB.name, GLRNB.label, frame, default_threshold=default, grid=grid, note=note)
