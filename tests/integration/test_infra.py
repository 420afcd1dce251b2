"""The operations files stay true to the code: alert rules, dashboard, Prometheus and
compose configuration. No servers are needed, and no Docker engine: the compose file
is parsed and checked service by service against API.md §4 and our Settings classes.

`promtool` (Debian package `prometheus`) validates and unit-tests the rules when it is
installed; without it a parser checks their shape. Either way every metric an alert or
panel queries must be emitted by our code, a library we use, or an exporter in the
compose file, so a renamed metric cannot silently leave an alert that never fires.
"""

import importlib
import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROMETHEUS = INFRA / "prometheus"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
API_MD = ROOT.parent / "shared" / "API.md"
PROMTOOL = shutil.which("promtool")
IMAGE = "concert-booking:local"

# Emitted by an exporter of the compose file: metric -> (service, labels).
EXPORTED = {
    "redis_up": ("redis-exporter", set()),
    "pg_up": ("postgres-exporter", set()),
}
REQUIRED_ALERTS = {  # what issue 6 asks for
    "ApiLatencyP95High", "Api5xxRateHigh", "ApiThroughputDropped", "DbPoolNearlyExhausted",
    "OutboxOldestUnpublishedTooOld", "DeadLettersGrowing", "NotificationProviderBreakerOpen",
    "VenueBreakerOpen", "ConsumerLagRising", "QueueAdmissionStalled",
}
SETTINGS = {  # compose service -> (its Settings class, its metrics/HTTP port field and host field)
    "migrate": ("services.common.settings_types.DatabaseSettings", None, None),
    "booking-api": ("services.booking.config.Settings", "metrics_port", "metrics_host"),
    "booking-worker-queue": ("workers.queue.config.Settings", "queue_metrics_port", "queue_metrics_host"),
    "booking-relay": ("workers.outbox_relay.config.Settings", "relay_metrics_port", "relay_metrics_host"),
    "booking-worker-saga": ("workers.saga.config.Settings", "saga_metrics_port", "worker_metrics_host"),
    "booking-worker-notifier": (
        "services.notifier.config.Settings", "notifier_metrics_port", "worker_metrics_host"),
    "booking-worker-token-expiry": (
        "workers.token_expiry.config.Settings", "token_expiry_metrics_port", "worker_metrics_host"),
}
SECTION_4 = [  # API.md §4, used when ../shared/API.md is not beside the checkout
    "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTH_JWT_SECRET", "BOOKING_HOST",
    "BOOKING_PORT", "KAKAO_API_URL", "KAKAO_API_KEY", "KAKAO_SENDER_KEY", "SMS_API_URL",
    "SMS_API_KEY", "VENUE_API_URL", "QUEUE_ADMIT_PER_SECOND", "QUEUE_MAX_ACTIVE",
    "QUEUE_ACTIVE_TTL_SECONDS", "HOLD_TTL_SECONDS", "MAX_HOLDS_PER_USER", "VENUE_MAX_ATTEMPTS",
]

# --- PromQL, just enough to name the metrics and labels an expression uses -------------

METRIC_CALL = re.compile(
    r'\b(?P<kind>Counter|Gauge|Histogram|Summary|GaugeMetricFamily|CounterMetricFamily)\(\s*'
    r'"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"\s*,\s*(?:"(?:[^"\\]|\\.)*"\s*)+'
    r'(?:,\s*(?:labelnames=|labels=)?\[(?P<labels>[^\]]*)\])?'
)
SUFFIXES = {
    "Counter": ("_total", "_created"), "CounterMetricFamily": ("_total",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"), "Summary": ("", "_sum", "_count"),
    "Gauge": ("",), "GaugeMetricFamily": ("",),
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
NAME = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
KEYWORDS = {
    "and", "or", "unless", "offset", "bool", "inf", "nan", "sum", "min", "max", "avg", "count",
    "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "le",
}


def promql_names(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Metric names, label names matched per metric, and grouping labels of `expr`."""
    grouping = {label.strip() for _, labels in GROUPING.findall(expr) for label in labels.split(",")}
    expr = GROUPING.sub(" ", expr)
    matched: dict[str, set[str]] = {}
    for name, matchers in SELECTOR.findall(expr):
        matched.setdefault(name, set()).update(MATCHER.findall(matchers))
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    names = {name for name in NAME.findall(bare) if name not in KEYWORDS} | set(matched)
    return names, matched, grouping - {""}


@cache
def emitted() -> dict[str, set[str]]:
    """Every series name our code exposes, with its labels (prometheus_client's suffixes)."""
    series: dict[str, set[str]] = {}
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        for call in METRIC_CALL.finditer(path.read_text()):
            base = call["name"].removesuffix("_total") if "Counter" in call["kind"] else call["name"]
            labels = set(re.findall(r'"(\w+)"', call["labels"] or ""))
            for suffix in SUFFIXES[call["kind"]]:
                series[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    # The default registry's collectors, which every process of ours serves.
    for name in re.findall(r"^(\w+)", generate_latest(REGISTRY).decode(), re.M):
        series.setdefault(name, set())
    return series


def known_labels(name: str) -> set[str] | None:
    if name in emitted():
        return emitted()[name]
    if name in EXPORTED:
        return EXPORTED[name][1]
    return set() if name == "up" else None


# --- files -----------------------------------------------------------------------------


@cache
def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@cache
def dashboard() -> dict[str, Any]:
    return dict(json.loads((INFRA / "grafana" / "dashboards" / "booking.json").read_text()))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


@cache
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((INFRA / "docker-compose.yml").read_text()))


def services() -> dict[str, Any]:
    return dict(compose()["services"])


def ours() -> dict[str, Any]:
    return {name: s for name, s in services().items() if s.get("image") == IMAGE}


def resolve(value: object) -> str:
    """Compose interpolation with nothing set: defaults, and a placeholder for required ones."""
    text = str(value)
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{\w+(?::\?[^}]*)?\}", "placeholder-" + "x" * 24, text)


def section_4() -> list[str]:
    if not API_MD.exists():
        return SECTION_4
    section = API_MD.read_text().split("## 4.", 1)[1].split("\n## ", 1)[0]
    return list(dict.fromkeys(re.findall(r"`([A-Z][A-Z0-9_]+)`", section)))


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- alert rules and dashboard -----------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        run = subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_config_and_every_dashboard_query(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    config = config.replace("/etc/prometheus/alerts.yml", str(PROMETHEUS / "alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    records = [{"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": records}]}))
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "dashboard.yml"]):
        run = subprocess.run([PROMTOOL, *args], cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    anchors = {slug(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines()
               if line.startswith("#")}
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    for rule in alert_rules():
        assert rule.keys() == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule
        assert rule["annotations"]["summary"], rule
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/RUNBOOK.md" and anchor in anchors, (rule["alert"], anchor)


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_queried_metric_and_label_exists(source: str) -> None:
    exprs = [r["expr"] for r in alert_rules()] if source == "alerts" else dashboard_exprs()
    for expr in exprs:
        names, matched, grouping = promql_names(expr)
        unknown = {n for n in names if known_labels(n) is None}
        assert not unknown, f"{source} query uses metrics nobody emits: {unknown}\n{expr}"
        for name, labels in matched.items():
            allowed = (known_labels(name) or set()) | {"job", "instance"}
            assert labels <= allowed, f"{name} has no label {labels - allowed}\n{expr}"
        offered = set().union(*((known_labels(n) or set()) for n in names)) | {"job", "instance"}
        assert grouping <= offered, f"grouping by {grouping - offered}\n{expr}"


def test_exporters_behind_alerts_are_in_compose_and_scraped() -> None:
    scraped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    targets = {t.split(":")[0] for job in scraped for c in job.get("static_configs", [])
               for t in c["targets"]}
    for service, _ in EXPORTED.values():
        assert service in services() and service in targets, service


def test_the_dashboard_has_the_panels_operators_look_for() -> None:
    panels = dashboard()["panels"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in ("tps", "p95", "p99", "error rate", "db pool", "outbox backlog", "oldest",
                   "dlq", "circuit breakers", "waiting queue", "notifications by channel",
                   "saga outcomes"):
        assert wanted in titles, wanted
    assert len({p["id"] for p in panels}) == len(panels)
    datasource = yaml.safe_load(
        (INFRA / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    for panel in panels:
        assert panel["type"] == "row" or panel["datasource"]["uid"] == datasource["uid"], panel
    provider = yaml.safe_load((INFRA / "grafana/provisioning/dashboards/booking.yml").read_text())
    mounts = services()["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


# --- compose file and image ---------------------------------------------------------------


def test_compose_runs_every_part_of_the_system() -> None:
    assert set(services()) == {
        "postgres", "redis", "kafka", "prometheus", "grafana", "migrate", "booking-api",
        "booking-relay", "booking-worker-queue", "booking-worker-saga", "booking-worker-notifier",
        "booking-worker-token-expiry", "kakao-sim", "sms-sim", "venue-sim", "redis-exporter",
        "postgres-exporter",
    }
    assert services()["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services()["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    published = {name: {published_port(p)[1] for p in s.get("ports", [])}
                 for name, s in services().items()}
    assert published["booking-api"] == {"8000"} and published["prometheus"] == {"9090"}
    assert published["grafana"] == {"3000"}


def published_port(mapping: str) -> tuple[str, str]:
    """The host address (empty: every interface) and host port of a short-syntax mapping."""
    parts = mapping.split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])


def test_only_the_api_is_published_beyond_this_machine() -> None:
    for name, service in services().items():
        for mapping in service.get("ports", []):
            host, port = published_port(mapping)
            if name == "booking-api":
                assert port == "8000", mapping
            else:
                assert host == "127.0.0.1", (name, mapping)


def test_the_datastores_take_passwords_that_must_be_set() -> None:
    text = (INFRA / "docker-compose.yml").read_text()
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        uses = re.findall(r"\$\{" + name + r"\b[^}]*\}|\$" + name + r"\b", text)
        # Never a default: `${POSTGRES_PASSWORD:-booking}` would start a database anyone can open.
        assert uses and all(re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", use) for use in uses), uses
    assert services()["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    redis = services()["redis"]["command"]
    assert redis[redis.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    for name in SETTINGS:
        environment = services()[name]["environment"]
        assert ":${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"], name
        assert environment["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
    assert "REDIS_PASSWORD" in services()["redis-exporter"]["environment"]


def test_redis_has_a_memory_ceiling_and_never_evicts() -> None:
    command = services()["redis"]["command"]
    assert re.fullmatch(r"\d+[kmg]b", resolve(command[command.index("--maxmemory") + 1]))
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_prometheus_cannot_be_stopped_or_emptied_over_http() -> None:
    flags = services()["prometheus"]["command"]
    assert not {"--web.enable-lifecycle", "--web.enable-admin-api"} & set(flags), flags


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs() -> None:
    for name, service in services().items():
        if name == "migrate":
            assert service["restart"] == "no" and "healthcheck" not in service
            continue
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and check["interval"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services(), (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services()[dependency], (name, dependency)
    for name, service in ours().items():
        if name in SETTINGS and name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_every_setting_of_api_md_section_4_is_given_to_the_api() -> None:
    variables = section_4()
    assert len(variables) >= 18, variables
    environment = services()["booking-api"]["environment"]
    missing = [name for name in variables if not str(environment.get(name, "")).strip()]
    assert not missing, missing
    for name in SETTINGS:
        assert services()[name]["environment"]["KAFKA_ENABLE_IDEMPOTENCE"] == "true", name


def test_each_process_starts_with_valid_settings_and_serves_where_it_is_scraped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scrape = {job["job_name"]: job["dns_sd_configs"][0] for job in
              yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
              if "dns_sd_configs" in job}
    for name, (class_path, port_field, host_field) in SETTINGS.items():
        module, _, class_name = class_path.rpartition(".")
        settings_class = getattr(importlib.import_module(module), class_name)
        for field in settings_class.model_fields:
            monkeypatch.delenv(field.upper(), raising=False)
        environment = {key.lower(): resolve(value)
                       for key, value in services()[name]["environment"].items()}
        settings = settings_class.model_validate(environment)
        if port_field is None:
            continue
        port = getattr(settings, port_field)
        assert scrape[name]["names"] == [name] and scrape[name]["port"] == port, name
        assert f":{port}/" in " ".join(services()[name]["healthcheck"]["test"]), name
        assert getattr(settings, host_field) == "0.0.0.0", name


def test_each_process_command_exists() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    parts = importlib.import_module("workers.cli").PARTS
    for name, service in ours().items():
        command = service["command"]
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, (name, command)
        else:
            assert command[0] in scripts, (name, command)
            if command[0] == "booking-worker":
                assert command[1] in parts, (name, command)


def test_mounted_files_exist_and_the_image_installs_the_package() -> None:
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), volume
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "pip install" in dockerfile
    assert services()["booking-api"]["build"] == {"context": "..", "dockerfile": "infra/Dockerfile"}
    # Everything is left out of the build context but the package: .data/ holds secrets.
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!services/", "!workers/"} <= set(ignored)
