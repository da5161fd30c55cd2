"""The deployment files (deploy/systemd, deploy/container, deploy/kubernetes) agree with each other and with the binary:
every shipped ini passes `sluice --check` with its files where the unit, compose file or pod mounts them; the unit
passes systemd-analyze verify; probes, drain timing, disruption budget and scraping point where the configuration
says; and the binary keeps the sd_notify contract the unit's Type=notify relies on.

No PostgreSQL needed. Checks that need a tool this machine may lack (systemd-analyze, systemd-sysusers, kubectl, the
kubernetes Python package, bash) skip with the tool's name; PyYAML (Debian: python3-yaml) is required."""

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from sluice_harness import free_port, get_pgbouncer_setting, port_accepts, set_pgbouncer_settings, wait_until

try:
    import yaml
except ImportError:  # reported by every test that needs it rather than as an import error of the module
    yaml = None

SOURCE_DIR = os.environ.get("SLUICE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY = os.path.join(SOURCE_DIR, "deploy")
SYSTEMD = os.path.join(DEPLOY, "systemd")
CONTAINER = os.path.join(DEPLOY, "container")
KUBERNETES = os.path.join(DEPLOY, "kubernetes")
BINARY = os.environ.get("SLUICE_BINARY")

# Settings whose value is a file name (docs/settings.md, "path" type): the ones a mount must provide.
PATH_SETTINGS = ("auth_file", "auth_hba_file", "logfile", "pidfile", "client_tls_key_file", "client_tls_cert_file",
                 "client_tls_ca_file", "server_tls_key_file", "server_tls_cert_file", "server_tls_ca_file")
# Manifest fields newer than the kubernetes Python package Debian ships (API 1.22), checked by hand instead.
NEWER_API_FIELDS = {("V1PodDisruptionBudgetSpec", "unhealthyPodEvictionPolicy")}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def require_yaml(test):
    if yaml is None:
        test.skipTest("PyYAML is not installed (Debian: python3-yaml)")


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def seconds(value):
    """A systemd time span as written in this repository's unit ("45", "45s", "2min") in seconds."""
    match = re.fullmatch(r"(\d+)\s*(s|sec|min)?", value.strip())
    if not match:
        raise ValueError(f"unsupported time span {value!r}")
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def check_config(test, ini_path):
    """Runs sluice --check on ini_path and fails the test with its output unless it exits 0."""
    if not BINARY:
        test.skipTest("SLUICE_BINARY is not set")
    result = subprocess.run([BINARY, "--check", ini_path], capture_output=True, text=True, timeout=30)
    test.assertEqual(result.returncode, 0, f"sluice --check {ini_path}:\n{result.stdout}{result.stderr}")


class MountedFiles:
    """A temporary directory standing in for the root of the machine, container or pod: files are placed at their
    absolute paths under it, and an ini's absolute file settings are rewritten to point there, so that --check
    finds exactly what the deployment would mount and nothing else."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="sluice-deploy-")

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def put(self, absolute, text):
        target = self.path(absolute)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)

    def relocate_ini(self, absolute):
        """Rewrites the absolute file settings of the ini placed at `absolute` into this root; returns its path."""
        target = self.path(absolute)
        ini = read(target)
        changes = {}
        for key in PATH_SETTINGS:
            value = get_pgbouncer_setting(ini, key)
            if value and value.startswith("/"):
                changes[key] = self.path(value)
        with open(target, "w", encoding="utf-8") as f:
            f.write(set_pgbouncer_settings(ini, changes) if changes else ini)
        return target


# ---------------------------------------------------------------------------------------------------------- systemd

def parse_unit(path):
    """{(section, key): [values]} of a unit file; systemd allows a key several times (ExecReload=)."""
    entries = {}
    section = None
    for line in read(path).splitlines():
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1]
            continue
        key, _, value = text.partition("=")
        entries.setdefault((section, key.strip()), []).append(value.strip())
    return entries


class SystemdTest(unittest.TestCase):
    unit_path = os.path.join(SYSTEMD, "sluice.service")
    ini_path = os.path.join(SYSTEMD, "sluice.ini")

    def setUp(self):
        self.unit = parse_unit(self.unit_path)
        self.ini = read(self.ini_path)

    def one(self, key, section="Service"):
        values = self.unit.get((section, key), [])
        self.assertEqual(len(values), 1, f"{key}= in [{section}]: {values}")
        return values[0]

    def config_path_of_unit(self):
        return shlex.split(self.one("ExecStart"))[-1]

    def test_ini_passes_check_where_the_unit_reads_it(self):
        mounts = MountedFiles()
        self.addCleanup(mounts.close)
        config = self.config_path_of_unit()
        mounts.put(config, self.ini)
        auth_file = get_pgbouncer_setting(self.ini, "auth_file")
        self.assertTrue(auth_file.startswith("/etc/sluice/"), "the unit's install steps put userlist.txt there")
        mounts.put(auth_file, read(os.path.join(DEPLOY, "userlist.txt")))
        check_config(self, mounts.relocate_ini(config))

    def test_unit_passes_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed (Debian: systemd)")
        if not BINARY:
            self.skipTest("SLUICE_BINARY is not set")
        # verify checks that every Exec*= program exists: point them at the binary under test.
        installed = shlex.split(self.one("ExecStart"))[0]
        with tempfile.TemporaryDirectory() as d:
            unit = os.path.join(d, "sluice.service")
            with open(unit, "w") as f:
                f.write(read(self.unit_path).replace(installed, BINARY))
            result = subprocess.run([tool, "verify", unit], capture_output=True, text=True, timeout=60)
        # An unknown or misspelt key is only a warning with exit code 0, so any output fails too.
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))

    def test_unit_stays_hardened(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze is not installed (Debian: systemd)")
        if "--offline" not in subprocess.run([tool, "--help"], capture_output=True, text=True).stdout:
            self.skipTest("systemd-analyze predates security --offline (systemd 250)")
        # Exposure on systemd's 0..100 scale (printed as 0.0..10.0); the unit scores 15 on systemd 252.
        result = subprocess.run([tool, "security", "--offline=yes", "--threshold=20", self.unit_path],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr)

    def test_unit_notifies_reloads_with_a_check_and_drains_with_sigterm(self):
        self.assertEqual(self.one("Type"), "notify")
        self.assertEqual(self.one("KillSignal"), "SIGTERM")
        reload_steps = self.unit[("Service", "ExecReload")]
        self.assertEqual(len(reload_steps), 2)
        self.assertIn("--check", shlex.split(reload_steps[0]))
        self.assertEqual(shlex.split(reload_steps[0])[-1], self.config_path_of_unit())
        self.assertEqual(shlex.split(reload_steps[1])[-2:], ["-HUP", "$MAINPID"])
        shutdown_timeout = float(get_pgbouncer_setting(self.ini, "shutdown_timeout") or 30)
        self.assertGreater(seconds(self.one("TimeoutStopSec")), shutdown_timeout,
                           "systemd would kill transactions the drain still waits for")

    def test_unit_limits_fit_the_ini(self):
        max_client_conn = int(get_pgbouncer_setting(self.ini, "max_client_conn") or 100)
        pool_size = int(get_pgbouncer_setting(self.ini, "default_pool_size") or 20)
        self.assertGreater(int(self.one("LimitNOFILE")), max_client_conn + 10 * pool_size + 100)
        # PrivateTmp hides /tmp from clients: the socket must live in the unit's RuntimeDirectory.
        self.assertEqual(self.one("PrivateTmp"), "yes")
        self.assertEqual(get_pgbouncer_setting(self.ini, "unix_socket_dir"), "/run/" + self.one("RuntimeDirectory"))
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes")):
            self.assertEqual(self.one(key), value, key)

    def test_sysusers_creates_the_unit_user(self):
        tool = shutil.which("systemd-sysusers")
        if not tool:
            self.skipTest("systemd-sysusers is not installed (Debian: systemd)")
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "etc"))
            result = subprocess.run([tool, f"--root={root}", os.path.join(SYSTEMD, "sluice.sysusers.conf")],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            users = [line.split(":")[0] for line in read(os.path.join(root, "etc", "passwd")).splitlines()]
        self.assertIn(self.one("User"), users)


def catches(pid, signo):
    """True when the process has a handler installed for signo (SigCgt in /proc/<pid>/status)."""
    try:
        for line in read(f"/proc/{pid}/status").splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signo - 1) & 1)
    except OSError:
        pass
    return False


class NotifyContractTest(unittest.TestCase):
    """What Type=notify and ExecReload= rely on: READY=1 once clients can connect, RELOADING=1 then READY=1 around a
    SIGHUP reload, STOPPING=1 when SIGTERM starts the drain (sd_notify(3))."""

    def setUp(self):
        if not BINARY:
            self.skipTest("SLUICE_BINARY is not set")
        self.dir = tempfile.mkdtemp(prefix="sluice-notify-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.notify.close)
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify.bind(self.notify_path)
        self.notify.settimeout(20)

    def next_message(self):
        return self.notify.recv(4096).decode().splitlines()

    def start(self):
        """Starts Sluice with the systemd example config under $NOTIFY_SOCKET; returns (process, port) at READY=1."""
        port = free_port()
        ini = set_pgbouncer_settings(read(os.path.join(SYSTEMD, "sluice.ini")), {
            "listen_port": str(port), "unix_socket_dir": self.dir, "metrics_port": "0",
            "auth_file": os.path.join(DEPLOY, "userlist.txt")})
        config = os.path.join(self.dir, "sluice.ini")
        with open(config, "w") as f:
            f.write(ini)
        with open(os.path.join(self.dir, "sluice.log"), "wb") as log:
            process = subprocess.Popen([BINARY, config], stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=dict(os.environ, NOTIFY_SOCKET=self.notify_path))
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        self.assertIn("READY=1", self.next_message())
        return process, port

    def test_ready_reloading_stopping(self):
        process, port = self.start()
        self.assertTrue(port_accepts(port), "READY=1 came before the listener accepts")
        wait_until(lambda: catches(process.pid, signal.SIGHUP) and catches(process.pid, signal.SIGTERM), 10,
                   "signal handlers")
        process.send_signal(signal.SIGHUP)
        self.assertEqual(self.next_message(), ["RELOADING=1"])
        self.assertIn("READY=1", self.next_message())
        process.send_signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", self.next_message())
        self.assertEqual(process.wait(30), 0)

    def test_reload_right_after_ready_is_a_reload(self):
        process, _ = self.start()
        process.send_signal(signal.SIGHUP)
        self.assertEqual(self.next_message(), ["RELOADING=1"])
        self.assertIsNone(process.poll())


# -------------------------------------------------------------------------------------------------------- container

def dockerfile_instructions(path):
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in read(path).splitlines():
        text = line.strip()
        if not pending and (not text or text.startswith("#")):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        text = pending + text
        pending = ""
        word, _, rest = text.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


class ContainerTest(unittest.TestCase):
    dockerfile = os.path.join(CONTAINER, "Dockerfile")
    ini_path = os.path.join(CONTAINER, "sluice.ini")

    def setUp(self):
        self.instructions = dockerfile_instructions(self.dockerfile)
        self.ini = read(self.ini_path)

    def all_of(self, name):
        return [args for word, args in self.instructions if word == name]

    def healthcheck_command(self):
        (healthcheck,) = self.all_of("HEALTHCHECK")
        return json.loads(healthcheck[healthcheck.index("CMD") + 3:])

    def test_image_is_multi_stage_and_runs_as_non_root(self):
        args = {a.split("=")[0]: a.split("=", 1)[1] for a in self.all_of("ARG") if "=" in a}
        stages = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], a) for a in self.all_of("FROM")]
        self.assertEqual(stages[0], "debian:bookworm AS build")
        self.assertEqual(stages[-1], "debian:bookworm-slim")
        (user,) = self.all_of("USER")
        uid = user.split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) > 0, "numeric, so that runAsNonRoot can check it")

    def test_build_stage_copies_every_source_directory_the_build_needs(self):
        copied = set()
        for args in self.all_of("COPY"):
            if not args.startswith("--from"):
                copied.update(p.rstrip("/") for p in args.split()[:-1])
        for path in copied:
            self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, path)), path)
        # Directories added outside if() blocks are needed with tests and benchmarks off.
        depth, needed = 0, set()
        for line in read(os.path.join(SOURCE_DIR, "CMakeLists.txt")).splitlines():
            text = line.strip()
            depth += text.startswith("if(") - text.startswith("endif(")
            match = re.match(r"add_subdirectory\((\w+)", text)
            if match and depth == 0:
                needed.add(match.group(1))
        self.assertTrue(needed <= copied, f"not copied: {needed - copied}")
        ignore = read(self.dockerfile + ".dockerignore").split()
        for path in copied:
            self.assertIn("!" + path + ("/" if os.path.isdir(os.path.join(SOURCE_DIR, path)) else ""), ignore)

    def test_ini_listens_where_the_image_expects(self):
        self.assertEqual(get_pgbouncer_setting(self.ini, "listen_addr"), "0.0.0.0")
        self.assertEqual(get_pgbouncer_setting(self.ini, "metrics_addr"), "0.0.0.0")
        metrics_port = get_pgbouncer_setting(self.ini, "metrics_port")
        self.assertIn(f"/dev/tcp/127.0.0.1/{metrics_port}", self.healthcheck_command()[-1])
        exposed = " ".join(self.all_of("EXPOSE")).split()
        self.assertEqual(sorted(exposed), sorted([get_pgbouncer_setting(self.ini, "listen_port"), metrics_port]))
        self.assertNotEqual(get_pgbouncer_setting(self.ini, "workers"), "0", "0 counts the host's cores")

    def test_ini_passes_check_with_the_compose_mounts(self):
        require_yaml(self)
        compose = load_yaml_documents(os.path.join(CONTAINER, "compose.yaml"))[0]
        service = compose["services"]["sluice"]
        mounts = MountedFiles()
        self.addCleanup(mounts.close)
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            mounts.put(target, read(os.path.normpath(os.path.join(CONTAINER, source))))
        (cmd,) = self.all_of("CMD")
        config = json.loads(cmd)[-1]
        self.assertEqual(read(mounts.path(config)), self.ini, "compose mounts this ini where the image reads it")
        check_config(self, mounts.relocate_ini(config))
        shutdown_timeout = float(get_pgbouncer_setting(self.ini, "shutdown_timeout") or 30)
        self.assertGreater(seconds(service["stop_grace_period"]), shutdown_timeout)

    def test_healthcheck_command_follows_healthz(self):
        if not shutil.which("bash"):
            self.skipTest("bash is not installed")
        if not BINARY:
            self.skipTest("SLUICE_BINARY is not set")
        port, metrics_port = free_port(), free_port()
        with tempfile.TemporaryDirectory() as d:
            config = os.path.join(d, "sluice.ini")
            with open(config, "w") as f:
                f.write(set_pgbouncer_settings(self.ini, {
                    "listen_addr": "127.0.0.1", "listen_port": str(port), "metrics_addr": "127.0.0.1",
                    "metrics_port": str(metrics_port), "auth_file": os.path.join(DEPLOY, "userlist.txt")}))
            command = [part.replace("9127", str(metrics_port)) for part in self.healthcheck_command()]
            with open(os.path.join(d, "log"), "wb") as log:
                process = subprocess.Popen([BINARY, config], stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: port_accepts(metrics_port) or process.poll() is not None, 20, "metrics port")
                self.assertEqual(subprocess.run(command, timeout=10).returncode, 0)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            self.assertNotEqual(subprocess.run(command, stderr=subprocess.DEVNULL, timeout=10).returncode, 0)


# ------------------------------------------------------------------------------------------------------- kubernetes

def base_objects():
    """The base's objects as kustomize would emit them, with the ConfigMap built from configMapGenerator's files."""
    base = os.path.join(KUBERNETES, "base")
    kustomization = load_yaml_documents(os.path.join(base, "kustomization.yaml"))[0]
    objects = []
    for resource in kustomization["resources"]:
        objects += load_yaml_documents(os.path.join(base, resource))
    for generator in kustomization.get("configMapGenerator", []):
        data = {os.path.basename(f): read(os.path.join(base, f)) for f in generator["files"]}
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
                        "data": data})
    return objects


def rendered_objects(overlay):
    """kubectl kustomize output for deploy/kubernetes/<overlay>, or None without kubectl."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    result = subprocess.run([kubectl, "kustomize", os.path.join(KUBERNETES, overlay)], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay}:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def volume_files(objects, volume):
    """{file name: text} a ConfigMap or Secret volume provides; a generated ConfigMap may carry a hash suffix."""
    if "configMap" in volume:
        name = volume["configMap"]["name"]
        source = [o for o in objects if o["kind"] == "ConfigMap" and re.fullmatch(
            re.escape(name) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
        return dict(source[0].get("data", {})) if source else None
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        source = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
        if not source:
            return None
        files = {key: base64.b64decode(value).decode() for key, value in source[0].get("data", {}).items()}
        return dict(files, **source[0].get("stringData", {}))
    return None


class KubernetesTest(unittest.TestCase):
    def setUp(self):
        require_yaml(self)
        self.objects = base_objects()
        self.deployment = by_kind(self.objects, "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        (self.container,) = self.pod["containers"]
        self.ini = read(os.path.join(KUBERNETES, "base", "sluice.ini"))

    def container_port(self, name_or_number):
        for port in self.container["ports"]:
            if name_or_number in (port["name"], port["containerPort"]):
                return port["containerPort"]
        self.fail(f"no container port {name_or_number}")

    def check_pod_config(self, objects):
        """Places every ConfigMap and Secret volume at its mountPath and runs --check on the container's ini."""
        deployment = by_kind(objects, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = MountedFiles()
        self.addCleanup(mounts.close)
        for mount in pod["containers"][0]["volumeMounts"]:
            files = volume_files(objects, volumes[mount["name"]])
            self.assertIsNotNone(files, f"volume {mount['name']} has no ConfigMap or Secret in the manifests")
            for name, text in files.items():
                mounts.put(os.path.join(mount["mountPath"], name), text)
        config = pod["containers"][0]["args"][-1]
        self.assertTrue(os.path.exists(mounts.path(config)), f"nothing mounted at {config}")
        check_config(self, mounts.relocate_ini(config))

    def test_base_ini_passes_check_where_the_pod_mounts_it(self):
        self.check_pod_config(self.objects)

    def test_rendered_example_passes_check_where_the_pod_mounts_it(self):
        objects = rendered_objects("example")
        if objects is None:
            self.skipTest("kubectl is not installed (it renders the kustomization)")
        config_map = by_kind(objects, "ConfigMap")
        self.assertEqual(config_map["data"]["sluice.ini"], self.ini)
        by_kind(objects, "PodMonitor")
        self.check_pod_config(objects)

    def test_auth_file_is_the_mounted_secret(self):
        auth_file = get_pgbouncer_setting(self.ini, "auth_file")
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        for mount in self.container["volumeMounts"]:
            if os.path.dirname(auth_file) == mount["mountPath"]:
                self.assertIn("secret", volumes[mount["name"]], "the auth_file holds secrets")
                self.assertNotIn("subPath", mount, "subPath mounts never see an updated Secret")
                return
        self.fail(f"auth_file {auth_file} is not in a mounted volume")

    def test_probes_ask_the_metrics_port(self):
        self.assertEqual(get_pgbouncer_setting(self.ini, "metrics_addr"), "0.0.0.0")
        self.assertEqual(get_pgbouncer_setting(self.ini, "listen_addr"), "0.0.0.0")
        metrics_port = int(get_pgbouncer_setting(self.ini, "metrics_port"))
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            action = self.container[probe]["httpGet"]
            self.assertEqual(action["path"], path, probe)
            self.assertEqual(self.container_port(action["port"]), metrics_port, probe)

    def test_service_and_podmonitor_reach_the_pods(self):
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        service = by_kind(self.objects, "Service")
        self.assertLessEqual(service["spec"]["selector"].items(), labels.items())
        (port,) = service["spec"]["ports"]
        self.assertEqual(self.container_port(port["targetPort"]), int(get_pgbouncer_setting(self.ini, "listen_port")))
        pdb = by_kind(self.objects, "PodDisruptionBudget")
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), labels.items())
        self.assertLess(pdb["spec"]["maxUnavailable"], self.deployment["spec"]["replicas"])
        monitor = load_yaml_documents(os.path.join(KUBERNETES, "components", "podmonitor", "podmonitor.yaml"))[0]
        self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(), labels.items())
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        self.assertEqual((endpoint["path"], self.container_port(endpoint["port"])),
                         ("/metrics", int(get_pgbouncer_setting(self.ini, "metrics_port"))))

    def test_termination_leaves_time_to_drain(self):
        command = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(command[0], "sleep")
        self.assertNotIn("kill", " ".join(command), "a SIGTERM here makes the kubelet's the second: no drain")
        shutdown_timeout = float(get_pgbouncer_setting(self.ini, "shutdown_timeout") or 30)
        self.assertGreater(self.pod["terminationGracePeriodSeconds"], float(command[1]) + shutdown_timeout)

    def test_pod_matches_the_image(self):
        (user,) = [args for word, args in dockerfile_instructions(os.path.join(CONTAINER, "Dockerfile"))
                   if word == "USER"]
        self.assertEqual(self.pod["securityContext"]["runAsUser"], int(user.split(":")[0]))
        self.assertTrue(self.container["securityContext"]["readOnlyRootFilesystem"])
        self.assertEqual(get_pgbouncer_setting(self.ini, "unix_socket_dir"), "", "the root file system is read-only")
        workers = int(get_pgbouncer_setting(self.ini, "workers"))
        self.assertEqual(workers, int(self.container["resources"]["requests"]["cpu"]), "0 counts the node's cores")

    def test_fields_exist_in_the_kubernetes_api(self):
        try:
            from kubernetes import client
        except ImportError:
            self.skipTest("the kubernetes Python package is not installed (Debian: python3-kubernetes)")
        errors = []
        for obj in self.objects:
            version = obj["apiVersion"].split("/")[-1]
            check_fields(client, obj, version[0].upper() + version[1:] + obj["kind"], obj["kind"], errors)
        self.assertEqual(errors, [])


def check_fields(client, value, type_name, where, errors):
    """Appends to errors every key of value that the kubernetes client's model type_name does not define."""
    if value is None:
        return
    if type_name.startswith("list["):
        for i, item in enumerate(value):
            check_fields(client, item, type_name[5:-1], f"{where}[{i}]", errors)
    elif type_name.startswith("dict("):
        inner = type_name[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            check_fields(client, item, inner, f"{where}.{key}", errors)
    elif hasattr(client, type_name):
        model = getattr(client, type_name)
        fields = {json_name: model.openapi_types[attr] for attr, json_name in model.attribute_map.items()}
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object ({type_name})")
            return
        for key, item in value.items():
            if key in fields:
                check_fields(client, item, fields[key], f"{where}.{key}", errors)
            elif (type_name, key) not in NEWER_API_FIELDS:
                errors.append(f"{where}.{key}: not a field of {type_name}")


if __name__ == "__main__":
    unittest.main()
