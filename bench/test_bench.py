"""Unit tests of bench/'s pure parts (no server): python3 -m unittest discover -s bench -p 'test_*.py'"""

import argparse
import base64
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import tempfile
import unittest

import bench_report as rep
import idle_clients


def load_bench_run():
    """bench/run as a module (it has no .py suffix); its main() only runs as a script."""
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(os.path.dirname(__file__), "run"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_run", loader))
    loader.exec_module(module)
    return module


bench_run = load_bench_run()


class ScramTest(unittest.TestCase):
    def test_rfc7677_example_exchange(self):
        # RFC 7677 section 3: user "user", password "pencil".
        final, server_signature = idle_clients.scram_client_final(
            "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        self.assertEqual(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        self.assertEqual(base64.b64encode(server_signature).decode(), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")

    def test_server_nonce_must_extend_the_client_nonce(self):
        with self.assertRaises(idle_clients.LoginError):
            idle_clients.scram_client_final("pencil", "n=,r=abc", "r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")

    def test_source_address_ranges_expand(self):
        self.assertEqual(idle_clients.parse_source_addrs("127.0.0.2-127.0.0.4,127.0.0.9"),
                         ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"])
        self.assertEqual(idle_clients.parse_source_addrs(""), [None])


PGBENCH_OUTPUT = """pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 20
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 41234
number of failed transactions: 0 (0.000%)
latency average = 0.968 ms
initial connection time = 12.5 ms
average connection time = 2.345 ms
tps = 20617.123456 (including reconnection times)
"""


class PgbenchParsingTest(unittest.TestCase):
    def test_summary_figures_are_read(self):
        parsed = rep.parse_pgbench_output(PGBENCH_OUTPUT)
        self.assertEqual(parsed["transactions"], 41234)
        self.assertEqual(parsed["failed"], 0)
        self.assertAlmostEqual(parsed["tps"], 20617.123456)
        self.assertAlmostEqual(parsed["connect_ms"], 2.345)
        self.assertAlmostEqual(parsed["initial_connect_ms"], 12.5)

    def test_errors_of_many_clients_are_counted_once(self):
        stderr = "".join(f"pgbench: error: client {i} script 0 aborted in command 1 query 0: ERROR:  boom\n"
                         for i in range(5)) + "pgbench: error: Run was aborted; the above results are incomplete.\n"
        self.assertEqual(rep.pgbench_error("", stderr, 2),
                         "pgbench exit 2: 5 × pgbench: error: client N script 0 aborted in command 1 query 0: "
                         "ERROR:  boom | pgbench: error: Run was aborted; the above results are incomplete.")

    def test_missing_figures_are_none(self):
        self.assertIsNone(rep.parse_pgbench_output("pgbench: error: connection refused")["tps"])

    def test_log_transactions_skip_failed_ones_and_sort_end_times(self):
        with tempfile.TemporaryDirectory() as d:
            prefix = os.path.join(d, "run")
            with open(prefix + ".123", "w") as f:
                f.write("0 0 1500 0 1700000001 500000\n0 1 failed 0 1700000000 123999\n")
            with open(prefix + ".123.1", "w") as f:
                f.write("1 0 2500 0 1700000000 250000 0\n")
            with open(os.path.join(d, "other.123"), "w") as f:
                f.write("0 0 999999 0 1700000000 1\n")
            latencies, ends = rep.read_transactions(rep.log_files(prefix))
            self.assertEqual(sorted(latencies), [1500, 2500])
            self.assertEqual(ends, [1700000000.25, 1700000001.5])

    def test_steady_window_leaves_out_logins_and_disconnects(self):
        samples = [(0.0, 0), (1.0, 50), (2.0, 60), (3.0, 70), (4.0, 80), (5.0, 200)]  # logins, steady, teardown
        ends = [1.5 + i / 100 for i in range(200)]  # 200 transactions from 1.5 s to 3.49 s
        self.assertEqual(rep.steady_window(samples, ends), (10, 100, 1.0))  # samples at 2.0 and 3.0
        self.assertIsNone(rep.steady_window(samples, ends[:10]))  # too short
        self.assertIsNone(rep.steady_window(samples, []))

    def test_p99_is_nearest_rank(self):
        mean, p99 = rep.latency_summary_ms(list(range(1, 1001)))  # 1..1000 µs
        self.assertAlmostEqual(mean, 0.5005)
        self.assertEqual(p99, 0.990)
        self.assertEqual(rep.latency_summary_ms([]), (None, None))


class ProcParsingTest(unittest.TestCase):
    def test_utime_plus_stime_with_spaces_in_comm(self):
        stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 9 0 12345 1000 200"
        self.assertEqual(rep.parse_proc_stat_ticks(stat), 100)

    def test_vm_rss(self):
        self.assertEqual(rep.parse_vm_rss_kib("Name:\tx\nVmRSS:\t   12345 kB\n"), 12345)


class SummaryTest(unittest.TestCase):
    def test_medians_ignore_failed_runs_and_ratios_divide_medians(self):
        results = [rep.RunResult(1, "pgbouncer", r, tps=t, mean_ms=1.0, p99_ms=2.0, cpu_us_per_tx=10.0)
                   for r, t in ((1, 100.0), (2, 300.0), (3, 200.0))]
        results += [rep.RunResult(1, "sluice", 1, tps=400.0, mean_ms=0.5, p99_ms=1.0, cpu_us_per_tx=5.0),
                    rep.RunResult(1, "sluice", 2, error="pgbench exit 2"),
                    rep.RunResult(1, "sluice", 3, tps=600.0, mean_ms=0.5, p99_ms=1.0, cpu_us_per_tx=5.0)]
        s = rep.summarize(results)
        self.assertEqual(s[(1, "pgbouncer")].tps, 200.0)
        self.assertEqual((s[(1, "sluice")].ok_runs, s[(1, "sluice")].runs, s[(1, "sluice")].tps), (2, 3, 500.0))
        table = rep.ratios_table([(1, "select", ["pgbouncer", "sluice"])], s)
        self.assertIn("| 2.50× | 0.50× | 0.50× | 0.50× | — |", table)
        main = rep.results_table([(1, "select", ["pgbouncer", "sluice"])], s)
        self.assertIn("1 failed run(s)", main)

    def test_callgrind_total_is_read_from_totals_or_summary(self):
        with tempfile.TemporaryDirectory() as d:
            for line in ("totals: 123456", "summary: 123456"):
                path = os.path.join(d, "callgrind.out")
                with open(path, "w") as f:
                    f.write(f"version: 1\nevents: Ir\nfn=main\n1 5\n{line}\n")
                self.assertEqual(rep.parse_callgrind_total(path), 123456)
            self.assertIsNone(rep.parse_callgrind_total(os.path.join(d, "missing.out")))

    def test_instructions_table_divides_sluice_by_pgbouncer_and_shows_failures(self):
        counted = [(2, "pgbouncer", 4621.4, ""), (2, "sluice", 6501.0, ""), (3, "pgbouncer", 6040.0, ""),
                   (3, "sluice", None, "pgbench exit 2")]
        table = rep.instructions_table([(2, "simple 200", []), (3, "extended 200", []), (5, "tpcb", [])], counted)
        self.assertIn("| # | Scenario | PgBouncer per tx | Sluice per tx | Sluice ÷ PgBouncer |", table)
        self.assertIn("| 2 | simple 200 | 4,621 | 6,501 | 1.41× |", table)
        self.assertIn("| 3 | extended 200 | 6,040 | failed: pgbench exit 2 | — |", table)
        self.assertNotIn("tpcb", table)

    def test_rounds_may_be_zero_only_with_instructions(self):
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            bench_run.parse_args(["--rounds", "0"])
        if bench_run.shutil.which("valgrind"):
            self.assertEqual(bench_run.parse_args(["--rounds", "0", "--instructions"]).rounds, 0)

    def test_metrics_table_divides_metrics_on_by_off_with_three_decimals(self):
        results = [rep.RunResult(5, "sluice", 1, tps=1000.0, mean_ms=2.0, p99_ms=4.0, cpu_us_per_tx=40.0),
                   rep.RunResult(5, "sluice_metrics", 1, tps=990.0, mean_ms=2.0, p99_ms=4.4, cpu_us_per_tx=41.0)]
        table = rep.metrics_table([(5, "tpcb", ["sluice", "sluice_metrics"])], rep.summarize(results))
        self.assertIn("| 5 | tpcb | 40.0 | 41.0 | 1.025× | 0.990× | 1.000× | 1.100× |", table)
        runs = rep.runs_table(results, [(5, "tpcb", ["sluice", "sluice_metrics"])])
        self.assertIn("Sluice, metrics on", runs)

    def test_settings_table_divides_alt_by_default_and_shows_each_round(self):
        results = [rep.RunResult(1, "sluice", 1, tps=1000.0, mean_ms=2.0, p99_ms=4.0, cpu_us_per_tx=40.0),
                   rep.RunResult(1, "sluice_alt", 1, tps=1010.0, mean_ms=1.9, p99_ms=4.0, cpu_us_per_tx=39.0),
                   rep.RunResult(1, "sluice", 2, tps=900.0, mean_ms=2.2, p99_ms=4.4, cpu_us_per_tx=44.0),
                   rep.RunResult(1, "sluice_alt", 2, tps=950.0, mean_ms=2.0, p99_ms=4.4, cpu_us_per_tx=44.0),
                   rep.RunResult(1, "sluice", 3, error="pgbench exit 2"),  # a round without a pair: left out
                   rep.RunResult(1, "sluice_alt", 3, tps=990.0, mean_ms=2.0, p99_ms=4.0, cpu_us_per_tx=41.0)]
        scenarios = [(1, "select", ["sluice", "sluice_alt"])]
        table = rep.settings_table(scenarios, rep.summarize(results), results)
        self.assertIn("| CPU µs/tx default | CPU µs/tx alt | CPU/tx alt ÷ default | TPS alt ÷ default |", table)
        # medians: default 42.0 µs, 950 tps, 2.1 ms; alt 41.0 µs, 990 tps, 2.0 ms
        self.assertIn("| 1 | select | 42.0 | 41.0 | 0.976× | 1.042× | 0.952× | 0.952× | 0.975×, 1.000× |", table)
        self.assertNotIn("each round", rep.settings_table(scenarios, rep.summarize(results)))

    def test_alt_target_is_labelled_with_its_settings(self):
        saved = rep.TARGET_LABELS["sluice_alt"]
        try:
            rep.set_alt_settings({"track_session_state": "0", "listen_relay": "0"})
            runs = rep.runs_table([rep.RunResult(1, "sluice_alt", 1, tps=1.0)], [(1, "select", ["sluice_alt"])])
            self.assertIn("| Sluice, track_session_state=0, listen_relay=0 |", runs)
        finally:
            rep.TARGET_LABELS["sluice_alt"] = saved


class CompareSettingsTest(unittest.TestCase):
    def parse_args(self, *argv):
        """bench/run's parse_args on argv; an argparse error comes back as the SystemExit and the message."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                return bench_run.parse_args(list(argv)), ""
            except SystemExit as e:
                return e, err.getvalue()

    def test_settings_keep_their_order_and_lose_spaces(self):
        self.assertEqual(list(bench_run.parse_settings("track_session_state=0, listen_relay = 0,").items()),
                         [("track_session_state", "0"), ("listen_relay", "0")])
        self.assertEqual(bench_run.parse_settings("server_reset_query="), {"server_reset_query": ""})

    def test_bad_settings_are_refused(self):
        for text in ("track_session_state", "=0", " =0", "a=1,b", "a=1,a=2", "bad key=1", "listen_port=1", "", ","):
            with self.subTest(text=text), self.assertRaises(argparse.ArgumentTypeError):
                bench_run.parse_settings(text)

    def test_bad_settings_are_an_argparse_error(self):
        for text in ("track_session_state", "=0"):
            with self.subTest(text=text):
                exit_, message = self.parse_args("--compare-settings", text)
                self.assertIsInstance(exit_, SystemExit)
                self.assertEqual(exit_.code, 2)
                self.assertIn("argument --compare-settings", message)

    def test_metrics_compare_and_compare_settings_exclude_each_other(self):
        exit_, message = self.parse_args("--metrics-compare", "--compare-settings", "listen_relay=0")
        self.assertIsInstance(exit_, SystemExit)
        self.assertIn("not allowed with argument", message)

    def test_plan_pairs_sluice_with_its_alternative_only(self):
        args, _ = self.parse_args("--compare-settings", "track_session_state=0", "--scenarios", "1,2,4,7")
        self.assertEqual([(s.number, t) for s, t in bench_run.plan(args)],
                         [(1, ["sluice", "sluice_alt"]), (2, ["sluice", "sluice_alt"]), (4, ["sluice", "sluice_alt"])])
        args, _ = self.parse_args("--metrics-compare", "--scenarios", "1")
        self.assertEqual([(s.number, t) for s, t in bench_run.plan(args)], [(1, ["sluice", "sluice_metrics"])])
        args, _ = self.parse_args("--scenarios", "1")
        self.assertEqual([(s.number, t) for s, t in bench_run.plan(args)], [(1, ["pgbouncer", "sluice"])])


if __name__ == "__main__":
    unittest.main()
