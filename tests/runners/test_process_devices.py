"""The process runner for real models: the developer's own interpreter (a venv outside /usr), GPU
device nodes and CUDA_VISIBLE_DEVICES in the sandbox, and the memory limit that holds without
breaking CUDA's address-space reservation. Real bubblewrap; the device nodes are fake ones under a
temporary dev tree (this machine has no GPU), bound by the same code path as real ones."""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

import bench.runners.process as process
from bench.errors import RunnerError
from bench.runners import run_submission
from bench.runners.devices import gpu_binding
from bench.runners.process import python_roots
from bench.tasks import load_task
from tests.helpers.runner_inputs import write_prepared

CLS = "ricord-ct-covid-cls"
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

# stdlib only: a probe reports what it sees and writes valid predictions
PROBE = textwrap.dedent("""
    import csv, json, mmap, os, sys
    report = {"prefix": sys.prefix, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "order": os.environ.get("CUDA_DEVICE_ORDER"),
              "dev": sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))}
    try:
        import developer_marker
        report["marker"] = developer_marker.VALUE
    except ImportError:
        report["marker"] = None
    if os.path.exists("/dev/nvidia0"):
        with open("/dev/nvidia0", "r+b", buffering=0) as node:
            report["node_rw"] = node.write(b"x") == 1
    try:  # a CUDA-style reservation: 64 GiB of address space, never touched
        reserved = mmap.mmap(-1, 64 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | \
getattr(mmap, "MAP_NORESERVE", 0), prot=0)  # PROT_NONE
        report["reserve"] = True
        reserved.close()
    except (OSError, ValueError):
        report["reserve"] = False
    try:  # 1.5 GiB of real, written memory: over the limit
        block = bytearray(3 << 29)
        report["allocate"] = True
    except MemoryError:
        report["allocate"] = False
    print("REPORT " + json.dumps(report))
    cases = json.load(open(os.path.join(os.environ["BENCH_INPUT"], "cases.json")))["cases"]
    with open(os.path.join(os.environ["BENCH_OUTPUT"], "predictions.csv"), "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["case_id", "negative", "positive"])
        for case in cases:
            writer.writerow([case["case_id"], "0.4", "0.6"])
""")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("cls"), CLS)


@pytest.fixture
def probe(tmp_path):
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "main.py").write_text(PROBE)
    (folder / "submission.yaml").write_text(
        "name: probe\nteam: tests\ndescription: reports what the sandbox allows\n"
        "command: ['{python}', 'main.py']\n"
    )
    return folder


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv outside /usr (under a folder the sandbox does not otherwise show) with a marker module."""
    root = tmp_path_factory.mktemp("developer-home") / "envs" / "model"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python3*/site-packages"))
    (site / "developer_marker.py").write_text("VALUE = 'from the developer venv'\n")
    return root


def _report(run_dir):
    stdout = (run_dir / "logs" / "stdout.txt").read_text()
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("REPORT "))[7:])


def _fake_dev(root, names):
    """Device nodes: character devices 1:3 (like /dev/null) as root, else plain files."""
    root.mkdir()
    for name in names:
        path = root / name
        if os.geteuid() == 0:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        else:
            path.write_bytes(b"")
        path.chmod(0o666)  # mknod's mode passes through the umask
    return root


def test_gpu_binding_picks_nodes_and_cuda_environment(tmp_path):
    dev = _fake_dev(tmp_path / "dev", ["nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm", "null"])
    binding = gpu_binding(2, dev_root=dev, visible="")
    assert binding.indexes == (0, 1)
    assert [inside for _, inside in binding.nodes] == ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl",
                                                        "/dev/nvidia-uvm"]
    assert binding.environment == {"CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    chosen = gpu_binding(1, dev_root=dev, visible="2,0")
    assert chosen.indexes == (2,) and chosen.nodes[0] == (str(dev / "nvidia2"), "/dev/nvidia2")
    assert gpu_binding(0, dev_root=dev).nodes == ()
    with pytest.raises(RunnerError, match="--gpus 4: 3 NVIDIA GPU device node\\(s\\) usable"):
        gpu_binding(4, dev_root=dev, visible="")
    with pytest.raises(RunnerError, match="nvidia0, nvidia1, nvidia2; CUDA_VISIBLE_DEVICES=5"):
        gpu_binding(1, dev_root=dev, visible="5")
    with pytest.raises(RunnerError, match="none"):
        gpu_binding(1, dev_root=_fake_dev(tmp_path / "empty", []), visible="")


def test_python_roots_of_a_venv_name_the_venv_and_its_base(venv):
    roots = python_roots(str(venv / "bin" / "python"))
    assert str(venv) in roots
    base = os.path.realpath(sys.base_prefix)
    if not base.startswith("/usr"):
        assert any(base == r or base.startswith(r + "/") for r in roots)


@needs_bwrap
def test_developer_venv_is_mounted_and_used_through_python(inputs, probe, venv, tmp_path):
    spec = load_task(CLS)
    result = run_submission(probe, spec, inputs, tmp_path / "run", runner="process",
                            limits={"timeout_s": 120, "memory": "1g"}, python=str(venv / "bin" / "python"))
    assert result.counts["ok"] == 4, (tmp_path / "run" / "logs" / "stderr.txt").read_text()
    report = _report(tmp_path / "run")
    assert report["prefix"] == str(venv) and report["marker"] == "from the developer venv"
    assert result.command[0] == str(venv / "bin" / "python")
    assert str(venv) in result.isolation.split("Python installation read-only: ")[1].split(", ")
    # without the option the venv stays invisible
    plain = run_submission(probe, spec, inputs, tmp_path / "plain", runner="process",
                           limits={"timeout_s": 120, "memory": "1g"})
    assert _report(tmp_path / "plain")["marker"] is None and plain.counts["ok"] == 4


@needs_bwrap
def test_gpus_bind_the_nodes_and_the_memory_limit_holds_without_an_address_space_cap(
        inputs, probe, tmp_path, monkeypatch):
    dev = _fake_dev(tmp_path / "dev", ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"])
    monkeypatch.setattr(process, "gpu_binding", lambda count: gpu_binding(count, dev_root=dev, visible=""))
    spec = load_task(CLS)
    limits = {"timeout_s": 120, "memory": "1g"}
    gpu = run_submission(probe, spec, inputs, tmp_path / "gpu", runner="process",
                         limits={**limits, "gpus": 1})
    report = _report(tmp_path / "gpu")
    assert report["dev"] == ["nvidia-uvm", "nvidia0", "nvidiactl"]
    assert report["cuda"] == "0" and report["order"] == "PCI_BUS_ID" and report["node_rw"] is True
    assert report["reserve"] is True  # CUDA's reservation survives RLIMIT_DATA
    assert report["allocate"] is False  # and 1.5 GiB of written memory still does not fit in 1 GiB
    assert "RLIMIT_DATA 1g" in gpu.isolation and "/dev/nvidia0" in gpu.isolation and gpu.counts["ok"] == 4
    cpu = run_submission(probe, spec, inputs, tmp_path / "cpu", runner="process", limits=limits)
    report = _report(tmp_path / "cpu")
    assert report["dev"] == [] and report["cuda"] is None
    assert report["reserve"] is False and report["allocate"] is False  # RLIMIT_AS refuses both
    assert "RLIMIT_AS 1g" in cpu.isolation and "no GPU device" in cpu.isolation


def test_python_for_the_docker_runner_is_refused(inputs, probe, tmp_path):
    with pytest.raises(RunnerError, match="--python applies to the process runner"):
        run_submission(probe, load_task(CLS), inputs, tmp_path / "run", runner="docker",
                       python=sys.executable)


def test_a_python_that_is_not_an_interpreter_is_refused(inputs, probe, tmp_path):
    with pytest.raises(RunnerError, match="--python /nonexistent/bin/python: not an executable file"):
        run_submission(probe, load_task(CLS), inputs, tmp_path / "run", runner="process",
                       python="/nonexistent/bin/python")
