"""Pure helpers of bench/run: pgbench output and log parsing, medians, and the markdown report. No I/O besides
reading pgbench's log files; unit-tested by bench/test_bench.py.

Latency comes from pgbench's per-transaction log (-l): one line per transaction,
    client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
where `time` is the transaction's elapsed time in microseconds (PostgreSQL 15 pgbench docs, "Per-Transaction
Logging"); a failed transaction has a word ("failed", "serialization", "deadlock") there instead and is left out.
The mean and the 99th percentile (nearest rank) are computed over every logged transaction of a run; the report
shows the median over rounds of each per-run figure.
"""

import bisect
import math
import os
import re
import statistics
from dataclasses import dataclass, field

TARGET_LABELS = {"pgbouncer": "PgBouncer", "sluice": "Sluice", "sluice_metrics": "Sluice, metrics on",
                 "sluice_alt": "Sluice, other settings", "direct": "direct"}


def settings_text(settings):
    """`key=value, key=value` in the order given: the name of bench/run --compare-settings' Sluice in the report."""
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def set_alt_settings(settings):
    """Labels the "sluice_alt" target with its settings, so that every table of the report says what it ran with."""
    TARGET_LABELS["sluice_alt"] = f"Sluice, {settings_text(settings)}"


@dataclass
class RunResult:
    """One pgbench run against one target. `error` is set (and the figures may be None) when the run failed."""
    scenario: int
    target: str
    round: int
    tps: float | None = None
    transactions: int | None = None
    failed_transactions: int = 0
    mean_ms: float | None = None
    p99_ms: float | None = None
    cpu_us_per_tx: float | None = None
    connect_ms: float | None = None  # pgbench's "average connection time" (-C runs)
    cpu_window: str = "steady"  # "steady": logins and disconnects left out; "whole run" when no window was found
    error: str | None = None
    notes: list = field(default_factory=list)

    @property
    def ok(self):
        return self.error is None and self.tps is not None


# --- pgbench ---------------------------------------------------------------------------------------------------------

_PATTERNS = {
    "tps": re.compile(r"^tps = ([0-9.]+)", re.M),
    "transactions": re.compile(r"^number of transactions actually processed: ([0-9]+)", re.M),
    "failed": re.compile(r"^number of failed transactions: ([0-9]+)", re.M),
    "connect_ms": re.compile(r"^average connection time = ([0-9.]+) ms", re.M),
    "initial_connect_ms": re.compile(r"^initial connection time = ([0-9.]+) ms", re.M),
}


def parse_pgbench_output(text):
    """Figures from pgbench's summary (stdout): tps, transactions, failed, connect_ms (-C: mean time to connect),
    initial_connect_ms (without -C: time to open every client's connection); absent ones are None."""
    out = {}
    for key, pattern in _PATTERNS.items():
        m = pattern.search(text)
        out[key] = None if m is None else (float(m.group(1)) if "." in m.group(1) else int(m.group(1)))
    return out


def pgbench_error(stdout, stderr, returncode):
    """A short description of a failed pgbench run: its distinct error lines (the same error of many clients
    counted once, "client N"), else the tail of its output."""
    lines = [l.strip() for l in (stderr + "\n" + stdout).splitlines() if l.strip()]
    picked = [l for l in lines if "error" in l.lower() or "abort" in l.lower() or "fatal" in l.lower()]
    if not picked:
        return f"pgbench exit {returncode}: " + " | ".join(lines[-6:])
    counts = {}
    for line in picked:
        key = re.sub(r"\bclient [0-9]+", "client N", line)
        counts[key] = counts.get(key, 0) + 1
    shown = [(f"{n} × " if n > 1 else "") + key for key, n in list(counts.items())[-6:]]
    return f"pgbench exit {returncode}: " + " | ".join(shown)


def read_transactions(paths):
    """(latencies_us, end_times) of every successful transaction in pgbench -l log files; end_times (epoch seconds,
    when each transaction completed: time_epoch + time_us) come back sorted."""
    latencies, ends = [], []
    for path in paths:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[2].isdigit():
                    latencies.append(int(fields[2]))
                    ends.append(int(fields[4]) + int(fields[5]) / 1e6)
    ends.sort()
    return latencies, ends


def steady_window(samples, end_times, min_seconds=0.5):
    """CPU over the part of a run where transactions flow, leaving out logins before and disconnects after.

    samples: [(epoch seconds, cpu ticks)] taken every fraction of a second during the run, in order; end_times:
    sorted completion times of the transactions. The window runs from the first sample after the first
    transaction completed to the last sample before the last one completed. Returns (ticks, transactions,
    seconds) over that window, or None when it is shorter than min_seconds."""
    if not end_times or len(samples) < 2:
        return None
    inside = [s for s in samples if end_times[0] < s[0] < end_times[-1]]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] < min_seconds:
        return None
    (t0, ticks0), (t1, ticks1) = inside[0], inside[-1]
    count = bisect.bisect_right(end_times, t1) - bisect.bisect_right(end_times, t0)
    return ticks1 - ticks0, count, t1 - t0


def latency_summary_ms(latencies_us):
    """(mean, p99) in milliseconds; p99 by nearest rank. (None, None) for an empty list."""
    if not latencies_us:
        return None, None
    ordered = sorted(latencies_us)
    rank = max(1, math.ceil(0.99 * len(ordered)))
    return statistics.fmean(ordered) / 1000.0, ordered[rank - 1] / 1000.0


def log_files(prefix):
    """pgbench -l --log-prefix=P writes P.<pid> and P.<pid>.<thread>."""
    directory, base = os.path.split(prefix)
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(base + "."))


# --- /proc -----------------------------------------------------------------------------------------------------------

def parse_proc_stat_ticks(stat_text):
    """utime + stime (clock ticks, all threads, exited ones included) from the text of /proc/<pid>/stat."""
    fields = stat_text[stat_text.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after "pid (comm)"


def parse_vm_rss_kib(status_text):
    m = re.search(r"^VmRSS:\s+([0-9]+) kB", status_text, re.M)
    return None if m is None else int(m.group(1))


def parse_callgrind_total(path):
    """The instruction total (Ir) of a callgrind output file: its `totals:` line, or `summary:` in older ones."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^(?:totals|summary):\s+([0-9]+)", text, re.M)
    return None if m is None else int(m.group(1))


# --- Aggregation -----------------------------------------------------------------------------------------------------

@dataclass
class Summary:
    """Medians over the successful rounds of one (scenario, target)."""
    runs: int
    ok_runs: int
    tps: float | None = None
    tps_min: float | None = None
    tps_max: float | None = None
    mean_ms: float | None = None
    p99_ms: float | None = None
    cpu_us_per_tx: float | None = None
    connect_ms: float | None = None
    cpu_whole_runs: int = 0  # successful runs whose CPU/tx covers the whole run (no steady window found)
    retried_runs: int = 0  # runs retried with a longer -T (no transaction completed at first)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results):
    """{(scenario, target): Summary} over a list of RunResult."""
    groups = {}
    for r in results:
        groups.setdefault((r.scenario, r.target), []).append(r)
    out = {}
    for key, runs in groups.items():
        ok = [r for r in runs if r.ok]
        s = Summary(runs=len(runs), ok_runs=len(ok))
        if ok:
            s.tps = _median(r.tps for r in ok)
            s.tps_min = min(r.tps for r in ok)
            s.tps_max = max(r.tps for r in ok)
            s.mean_ms = _median(r.mean_ms for r in ok)
            s.p99_ms = _median(r.p99_ms for r in ok)
            s.cpu_us_per_tx = _median(r.cpu_us_per_tx for r in ok)
            s.connect_ms = _median(r.connect_ms for r in ok)
            s.retried_runs = sum(1 for r in runs if any(n.startswith("retried") for n in r.notes))
            s.cpu_whole_runs = sum(1 for r in ok if r.cpu_us_per_tx is not None and r.cpu_window != "steady")
        out[key] = s
    return out


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


# --- Markdown --------------------------------------------------------------------------------------------------------

def fmt(value, digits=2, empty="—"):
    if value is None:
        return empty
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value):
    return "—" if value is None else f"{value:.2f}×"


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(scenarios, summaries):
    """Main table: one row per (scenario, target) with medians; ratios on the Sluice rows.

    scenarios: ordered list of (number, title, targets)."""
    header = ["#", "Scenario", "Target", "Runs ok", "TPS (median)", "TPS min–max", "Mean latency ms",
              "p99 latency ms", "Pooler CPU µs/tx", "TPS Sluice/PgBouncer", "TPS Sluice/direct", "Notes"]
    rows = []
    for number, title, targets in scenarios:
        for target in targets:
            s = summaries.get((number, target))
            if s is None:
                continue
            notes = []
            if s.connect_ms is not None:
                notes.append(f"connect {s.connect_ms:.2f} ms")
            if s.retried_runs:
                notes.append(f"{s.retried_runs} run(s) retried with a longer -T")
            if s.cpu_whole_runs:
                notes.append(f"CPU over the whole run in {s.cpu_whole_runs} run(s)")
            if s.ok_runs == 0:
                notes.append("**failed** (see Failures)")
            elif s.ok_runs < s.runs:
                notes.append(f"{s.runs - s.ok_runs} failed run(s)")
            vs_bouncer = vs_direct = ""
            if target == "sluice":
                b = summaries.get((number, "pgbouncer"))
                d = summaries.get((number, "direct"))
                vs_bouncer = fmt_ratio(ratio(s.tps, b.tps if b else None)) if b else "n/a"
                vs_direct = fmt_ratio(ratio(s.tps, d.tps if d else None)) if d else "n/a"
            tps_range = "—" if s.tps_min is None else f"{s.tps_min:,.0f}–{s.tps_max:,.0f}"
            rows.append([number, title, TARGET_LABELS[target], f"{s.ok_runs}/{s.runs}", fmt(s.tps, 0), tps_range,
                         fmt(s.mean_ms, 3), fmt(s.p99_ms, 3),
                         "n/a" if target == "direct" else fmt(s.cpu_us_per_tx, 1),
                         vs_bouncer, vs_direct, "; ".join(notes)])
    return md_table(header, rows)


def ratios_table(scenarios, summaries):
    """Sluice divided by PgBouncer and by direct, per figure. TPS above 1 is better; the others below 1."""
    header = ["#", "Scenario", "TPS ÷ PgBouncer", "Mean lat ÷ PgBouncer", "p99 ÷ PgBouncer", "CPU/tx ÷ PgBouncer",
              "TPS ÷ direct", "Mean lat ÷ direct", "p99 ÷ direct"]
    rows = []
    for number, title, targets in scenarios:
        s = summaries.get((number, "sluice"))
        if s is None:
            continue
        b = summaries.get((number, "pgbouncer")) or Summary(0, 0)
        d = summaries.get((number, "direct")) or Summary(0, 0)
        rows.append([number, title,
                     fmt_ratio(ratio(s.tps, b.tps)), fmt_ratio(ratio(s.mean_ms, b.mean_ms)),
                     fmt_ratio(ratio(s.p99_ms, b.p99_ms)), fmt_ratio(ratio(s.cpu_us_per_tx, b.cpu_us_per_tx)),
                     fmt_ratio(ratio(s.tps, d.tps)), fmt_ratio(ratio(s.mean_ms, d.mean_ms)),
                     fmt_ratio(ratio(s.p99_ms, d.p99_ms))])
    return md_table(header, rows)


def instructions_table(scenarios, instruction_results):
    """One row per scenario: each pooler's user-space instructions per transaction (bench/run --instructions) and
    Sluice's ÷ the other's (PgBouncer's, or the A/B alternative's)."""
    counted = {(number, target): (per_tx, note) for number, target, per_tx, note in instruction_results}
    targets = [t for t in TARGET_LABELS if any(target == t for _, target, _, _ in instruction_results)]
    other = next((t for t in targets if t != "sluice"), None)
    header = ["#", "Scenario"] + [f"{TARGET_LABELS[t]} per tx" for t in targets]
    if other and "sluice" in targets:
        header.append(f"Sluice ÷ {TARGET_LABELS[other]}")
    rows = []
    for number, title, _ in scenarios:
        if not any(key[0] == number for key in counted):
            continue
        row = [number, title]
        for t in targets:
            per_tx, note = counted.get((number, t), (None, ""))
            row.append(fmt(per_tx, 0) if per_tx is not None else (f"failed: {note}" if note else "—"))
        if other and "sluice" in targets:
            row.append(fmt_ratio(ratio(counted.get((number, "sluice"), (None,))[0],
                                       counted.get((number, other), (None,))[0])))
        rows.append(row)
    return md_table(header, rows)


def ab_table(scenarios, summaries, base, alt, base_name, alt_name, results=None):
    """Target `alt` divided by target `base` per scenario: two Sluice processes of the same binary run interleaved
    (bench/run --metrics-compare, --compare-settings). Ratios have three decimals: a few % is what is asked about.

    With `results` (the RunResult list), a last column gives the CPU/tx ratio of each round's pair of runs: they ran
    back to back, so their spread shows how far the drifts of a shared machine move the ratio of the medians."""
    header = ["#", "Scenario", f"CPU µs/tx {base_name}", f"CPU µs/tx {alt_name}", f"CPU/tx {alt_name} ÷ {base_name}",
              f"TPS {alt_name} ÷ {base_name}", f"Mean lat {alt_name} ÷ {base_name}",
              f"p99 {alt_name} ÷ {base_name}"]
    if results is not None:
        header.append(f"CPU/tx {alt_name} ÷ {base_name}, each round")
    rows = []
    for number, title, _ in scenarios:
        b, a = summaries.get((number, base)), summaries.get((number, alt))
        if b is None or a is None:
            continue
        row = [number, title, fmt(b.cpu_us_per_tx, 1), fmt(a.cpu_us_per_tx, 1),
               fmt_ratio3(ratio(a.cpu_us_per_tx, b.cpu_us_per_tx)), fmt_ratio3(ratio(a.tps, b.tps)),
               fmt_ratio3(ratio(a.mean_ms, b.mean_ms)), fmt_ratio3(ratio(a.p99_ms, b.p99_ms))]
        if results is not None:
            row.append(", ".join(fmt_ratio3(r) for r in round_ratios(results, number, base, alt, "cpu_us_per_tx"))
                       or "—")
        rows.append(row)
    return md_table(header, rows)


def round_ratios(results, scenario, base, alt, figure):
    """`figure` of `alt` ÷ `figure` of `base`, round by round, for the rounds where both runs have it."""
    by_round = {}
    for r in results:
        if r.scenario == scenario and r.target in (base, alt) and r.ok:
            by_round.setdefault(r.round, {})[r.target] = getattr(r, figure)
    out = []
    for _, pair in sorted(by_round.items()):
        value = ratio(pair.get(alt), pair.get(base))
        if value is not None:
            out.append(value)
    return out


def fmt_ratio3(value):
    return "—" if value is None else f"{value:.3f}×"


def metrics_table(scenarios, summaries):
    """Sluice with metrics on divided by Sluice with metrics off (bench/run --metrics-compare), per scenario."""
    return ab_table(scenarios, summaries, "sluice", "sluice_metrics", "off", "on")


def settings_table(scenarios, summaries, results=None):
    """Sluice with the settings of bench/run --compare-settings divided by Sluice with the bench's settings."""
    return ab_table(scenarios, summaries, "sluice", "sluice_alt", "default", "alt", results)


def runs_table(results, titles):
    header = ["#", "Target", "Round", "TPS", "Transactions", "Mean ms", "p99 ms", "CPU µs/tx", "Connect ms", "Result",
              "Notes"]
    rows = []
    for r in sorted(results, key=lambda r: (r.scenario, r.round, r.target)):
        rows.append([r.scenario, TARGET_LABELS[r.target], r.round, fmt(r.tps, 0), fmt(r.transactions, 0),
                     fmt(r.mean_ms, 3), fmt(r.p99_ms, 3), fmt(r.cpu_us_per_tx, 1), fmt(r.connect_ms, 2),
                     ("ok" if r.cpu_window == "steady" or r.cpu_us_per_tx is None else f"ok, CPU: {r.cpu_window}")
                     if r.ok else "failed", "; ".join(r.notes)])
    return md_table(header, rows)


@dataclass
class IdleResult:
    """Resident memory of one pooler holding `asked` idle logged-in clients."""
    target: str
    asked: int
    opened: int = 0
    alive: int | None = None
    rss_before_kib: int | None = None
    rss_with_kib: int | None = None
    rss_after_close_kib: int | None = None
    open_seconds: float | None = None
    fd_limit: int | None = None  # the pooler's open-file limit
    errors: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def kib_per_client(self):
        if self.rss_before_kib is None or self.rss_with_kib is None or not self.opened:
            return None
        return (self.rss_with_kib - self.rss_before_kib) / self.opened

    @property
    def held(self):
        return self.error is None and self.opened == self.asked and self.alive == self.asked


def idle_table(idle_results):
    header = ["Target", "Clients", "Pooler fd limit", "Logged in", "Still open after hold", "Held", "RSS before MiB",
              "RSS with clients MiB", "KiB per client", "RSS after close MiB", "Login time s"]
    mib = lambda kib: fmt(None if kib is None else kib / 1024.0, 1)
    rows = [[TARGET_LABELS[r.target], fmt(r.asked, 0), fmt(r.fd_limit, 0), fmt(r.opened, 0), fmt(r.alive, 0),
             "yes" if r.held else "**no**", mib(r.rss_before_kib), mib(r.rss_with_kib), fmt(r.kib_per_client, 2),
             mib(r.rss_after_close_kib), fmt(r.open_seconds, 1)] for r in idle_results]
    return md_table(header, rows)
