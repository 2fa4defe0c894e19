"""cosmos_preflight's checks (plugins/filter/preflight_checks.py) and the df filter: every
branch of every message, on registered results shaped as the role's probes register them."""

from __future__ import annotations

import json
from pathlib import Path

from cosmos_driver.content import COLLECTION
from tests.fakes.plays import load_filter, run_local_play

preflight = load_filter("preflight_checks")
df = load_filter("df")

SKIPPED = {"skipped": True, "changed": False, "false_condition": "cosmos_preflight_has_gpus"}
RUNNING = {
    "changed": False,
    "installed": True,
    "running": True,
    "error": "",
    "nvidia_runtime": True,
    "version": "27.3.1",
    "runtimes": ["nvidia", "runc"],
}
SMI_OK = {"rc": 0, "stdout": "550.54.15", "stdout_lines": ["550.54.15"], "stderr": ""}
HEADER = "Filesystem 1024-blocks Used Available Capacity Mounted on"


def df_result(kib: int) -> dict:
    return {"rc": 0, "stdout_lines": [HEADER, f"/dev/sda1 1 1 {kib} 1% /"], "stderr": ""}


def stats(*exists: bool) -> dict:
    return {
        "results": [{"item": f"/cdi/{i}.yaml", "stat": {"exists": e}} for i, e in enumerate(exists)]
    }


def probes(**changes) -> dict:
    """A docker GPU host that passes every check; `changes` replace its keys."""
    base = {
        "engine": "docker",
        "engine_service": "docker",
        "ssh_user": "cosmos",
        "has_gpus": True,
        "has_gpu_runtime": True,
        "nvidia_smi": "nvidia-smi",
        "min_driver": "535",
        "nvidia_ctk": "nvidia-ctk",
        "cdi_specs": ["/etc/cdi/nvidia.yaml", "/var/run/cdi/nvidia.yaml"],
        "image_source": "git",
        "remote_root": "/var/lib/cosmos",
        "min_free_gb": 300,
        "engine_probe": RUNNING,
        "engine_reprobe": None,
        "driver_probe": SMI_OK,
        "cdi_probe": {"skipped": True, "results": []},
        "cdi_reprobe": None,
        "git_probe": {"rc": 0, "stdout": "git version 2.43.0\n", "stderr": ""},
        "df": df_result(488281250),
        "free_gb": 500.0,
    }
    return {**base, **changes}


def check(name: str, **changes) -> dict:
    return preflight.preflight_checks(probes(**changes))[name]


# --- the whole report -----------------------------------------------------------------------


def test_a_good_host_passes_all_five_checks():
    checks = preflight.preflight_checks(probes())
    assert list(checks) == ["engine", "driver", "toolkit", "git", "disk"]
    assert [c["ok"] for c in checks.values()] == [True] * 5
    assert [c["skipped"] for c in checks.values()] == [False] * 5
    assert checks["engine"]["message"] == "docker 27.3.1 runs (runtimes: nvidia, runc)"
    assert checks["driver"]["message"] == "NVIDIA driver 550.54.15 (>= 535)"
    assert checks["toolkit"]["message"] == "NVIDIA container toolkit configured for docker"
    assert checks["git"]["message"] == "git version 2.43.0"
    assert checks["disk"]["message"] == "500.0 GB free at /var/lib/cosmos (>= 300 GB)"


def test_the_filters_are_registered_under_role_prefixed_names():
    assert preflight.FilterModule().filters() == {
        "cosmos_preflight_checks": preflight.preflight_checks,
        "cosmos_preflight_toolkit_ready": preflight.toolkit_ready,
        "cosmos_preflight_driver_version": preflight.driver_version,
    }
    assert df.FilterModule().filters() == {"cosmos_df_free_gb": df.df_free_gb}


# --- engine ---------------------------------------------------------------------------------


def engine(**state) -> dict:
    return check(
        "engine", engine_probe={**RUNNING, "running": False, "nvidia_runtime": False, **state}
    )


def test_engine_not_installed_says_install_or_pick_another():
    found = engine(installed=False, error="docker: command not found")
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "docker is not installed: install Docker Engine or Podman (see docs/setup.md),"
        " or set cosmos_engine to the engine the host has",
    }


def test_engine_permission_denied_names_the_user_and_the_group():
    found = engine(error="Got Permission Denied while trying to connect to the socket")
    assert not found["ok"]
    assert found["message"] == (
        "cosmos cannot use docker: Got Permission Denied while trying to connect to the socket."
        " Add the user to the docker group, or connect as a user that may run containers"
    )


def test_engine_that_does_not_answer_says_start_it():
    silent = {**RUNNING, "running": False, "error": "info did not answer in 30 s"}
    found = check("engine", engine_service="docker.socket", engine_probe=silent)
    assert not found["ok"]
    assert found["message"] == (
        "docker does not answer (info did not answer in 30 s): start it"
        " (systemctl start docker.socket) or fix cosmos_engine_env"
    )


def test_each_engine_branch_says_something_else():
    messages = {
        engine(installed=False, error="docker: command not found")["message"],
        engine(error="permission denied")["message"],
        engine(error="Cannot connect to the Docker daemon")["message"],
        check("engine")["message"],
    }
    assert len(messages) == 4


def test_the_engine_is_judged_as_probed_again_unless_that_probe_was_skipped():
    down = {**RUNNING, "running": False, "error": "Cannot connect"}
    assert check("engine", engine_probe=down, engine_reprobe=RUNNING)["ok"]
    assert not check("engine", engine_probe=down, engine_reprobe=SKIPPED)["ok"]
    assert not check("engine", engine_probe=down, engine_reprobe=None)["ok"]


# --- driver ---------------------------------------------------------------------------------


def test_no_gpu_skips_the_driver_check():
    found = check("driver", has_gpus=False, has_gpu_runtime=False, driver_probe=SKIPPED)
    assert found == {"ok": True, "skipped": True, "message": "no GPU (cosmos_gpu_count 0): skipped"}


def test_an_unreadable_driver_quotes_nvidia_smi_and_says_install_it():
    smi = {"rc": 9, "stdout": "", "stdout_lines": [], "stderr": " NVIDIA-SMI has failed \n"}
    found = check("driver", driver_probe=smi)
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "nvidia-smi (nvidia-smi) gives no driver version (rc 9: NVIDIA-SMI has failed)."
        " Install the NVIDIA driver (535 or newer) and reboot,"
        " or set cosmos_gpu_count 0 for a host without GPUs",
    }


def test_an_unreadable_driver_falls_back_to_stdout_then_to_the_module_msg():
    text = {"rc": 0, "stdout": "No devices were found", "stdout_lines": ["No devices were found"]}
    missing = {
        "rc": 2,
        "stdout": "",
        "stdout_lines": [],
        "stderr": "",
        "msg": "[Errno 2] No such file",
    }
    assert "(rc 0: No devices were found)" in check("driver", driver_probe=text)["message"]
    assert "(rc 2: [Errno 2] No such file)" in check("driver", driver_probe=missing)["message"]
    assert "(rc none: )" in check("driver", driver_probe=SKIPPED)["message"]
    assert not check("driver", driver_probe=text)["ok"]


def test_a_version_from_a_failed_nvidia_smi_is_not_read():
    failed = {"rc": 1, "stdout": "550.54.15", "stdout_lines": ["550.54.15"], "stderr": ""}
    found = check("driver", driver_probe=failed)
    assert not found["ok"]
    assert found["message"].startswith("nvidia-smi (nvidia-smi) gives no driver version (rc 1: 550")


def test_an_old_driver_says_upgrade():
    found = check("driver", min_driver="999.1")
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "NVIDIA driver 550.54.15 is older than 999.1: upgrade the driver and reboot",
    }


def test_driver_versions_compare_by_number_not_text():
    assert check("driver", min_driver="550.54.15")["ok"]
    assert check("driver", min_driver=535)["ok"]
    assert not check("driver", min_driver="550.100")["ok"]
    assert not check("driver", min_driver="550.54.16")["ok"]


def test_each_driver_branch_says_something_else():
    messages = {
        check("driver", has_gpus=False)["message"],
        check("driver", driver_probe={"rc": 9, "stderr": "failed"})["message"],
        check("driver", min_driver="999")["message"],
        check("driver")["message"],
    }
    assert len(messages) == 4


def test_the_driver_version_is_nvidia_smis_first_line_trimmed():
    assert (
        preflight.driver_version({"rc": 0, "stdout_lines": [" 550.54.15 ", "550.54.15"]})
        == "550.54.15"
    )
    assert preflight.driver_version({"rc": 0, "stdout_lines": []}) == ""
    assert preflight.driver_version(SKIPPED) == ""


# --- container toolkit ----------------------------------------------------------------------


def test_no_gpu_runtime_skips_the_toolkit_check_and_says_which_reason():
    no_gpu = check("toolkit", has_gpus=False, has_gpu_runtime=False)
    no_runtime = check("toolkit", has_gpu_runtime=False)
    assert no_gpu == {
        "ok": True,
        "skipped": True,
        "message": "no GPU (cosmos_gpu_count 0): skipped",
    }
    assert no_runtime == {
        "ok": True,
        "skipped": True,
        "message": "no GPU runtime (cosmos_gpu_flags empty): skipped",
    }


def test_docker_without_an_nvidia_runtime_says_configure_it():
    found = check(
        "toolkit", engine_probe={**RUNNING, "nvidia_runtime": False, "runtimes": ["runc"]}
    )
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "the NVIDIA container toolkit is not configured for docker (no nvidia runtime):"
        " install it and run `nvidia-ctk runtime configure --runtime=docker`, then restart docker;"
        " or set cosmos_preflight_configure_toolkit true",
    }


def test_podman_without_a_cdi_spec_says_generate_one():
    found = check(
        "toolkit", engine="podman", engine_service="podman", cdi_probe=stats(False, False)
    )
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "no NVIDIA CDI spec (/etc/cdi/nvidia.yaml or /var/run/cdi/nvidia.yaml): install"
        " the NVIDIA container toolkit and run"
        " `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`,"
        " or set cosmos_preflight_configure_toolkit true",
    }


def test_podman_is_ready_with_any_cdi_spec_and_ignores_the_docker_runtime():
    no_runtime = {**RUNNING, "nvidia_runtime": False}
    found = check("toolkit", engine="podman", engine_probe=no_runtime, cdi_probe=stats(False, True))
    assert found == {
        "ok": True,
        "skipped": False,
        "message": "NVIDIA container toolkit configured for podman",
    }


def test_toolkit_ready_reads_the_last_probe():
    docker_down = probes(engine_probe={**RUNNING, "nvidia_runtime": False})
    podman_none = probes(engine="podman", cdi_probe=stats(False, False))
    assert not preflight.toolkit_ready(docker_down)
    assert preflight.toolkit_ready({**docker_down, "engine_reprobe": RUNNING})
    assert not preflight.toolkit_ready({**docker_down, "engine_reprobe": SKIPPED})
    assert not preflight.toolkit_ready(podman_none)
    assert preflight.toolkit_ready({**podman_none, "cdi_reprobe": stats(True, False)})
    assert not preflight.toolkit_ready(
        {**podman_none, "cdi_reprobe": {**SKIPPED, "results": [SKIPPED]}}
    )


def test_skipped_cdi_stat_items_are_no_spec():
    assert not preflight.cdi_found({"results": [SKIPPED, SKIPPED]})
    assert not preflight.cdi_found({})
    assert preflight.cdi_found({"results": [SKIPPED, {"stat": {"exists": True}}]})


# --- git ------------------------------------------------------------------------------------


def test_a_local_image_source_skips_git():
    found = check("git", image_source="local", git_probe=SKIPPED)
    assert found == {
        "ok": True,
        "skipped": True,
        "message": "cosmos_image_source is local: git not needed, skipped",
    }


def test_no_git_quotes_its_error_and_says_install_it():
    found = check("git", git_probe={"rc": 127, "stdout": "", "stderr": "sh: git: not found\n"})
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "git is not on the host (`git --version` rc 127: sh: git: not found) and the"
        " image role clones the Cosmos source with it: install git (for example apt-get install"
        " git, or dnf install git), or set cosmos_image_source local",
    }


def test_no_git_without_stderr_gives_only_the_rc():
    no_stderr = check("git", git_probe={"rc": 2, "stdout": "", "stderr": "  ", "msg": "[Errno 2]"})
    not_git = check("git", git_probe={"rc": 0, "stdout": "hub version 2.1", "stderr": ""})
    assert no_stderr["message"].startswith("git is not on the host (`git --version` rc 2) and")
    assert not_git["message"].startswith("git is not on the host (`git --version` rc 0) and")
    assert not no_stderr["ok"]
    assert not not_git["ok"]


def test_a_git_version_from_a_failed_git_is_not_taken():
    failed = check("git", git_probe={"rc": 1, "stdout": "git version 2.43.0", "stderr": "broken"})
    assert not failed["ok"]
    assert failed["message"].startswith("git is not on the host (`git --version` rc 1: broken)")


# --- disk -----------------------------------------------------------------------------------


def test_an_unreadable_disk_quotes_df():
    failed = {
        "rc": 1,
        "stdout_lines": [],
        "stderr": "df: /var/lib/cosmos: No such file or directory\n",
    }
    found = check("disk", df=failed, free_gb=0.0)
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "cannot read the free space at /var/lib/cosmos:"
        " df: /var/lib/cosmos: No such file or directory",
    }


def test_a_full_disk_says_how_much_is_free_and_needed():
    found = check("disk", df=df_result(1234567), free_gb=1.3, min_free_gb="300")
    assert found == {
        "ok": False,
        "skipped": False,
        "message": "only 1.3 GB free at /var/lib/cosmos, below the 300 GB needed: free space there,"
        " or point cosmos_remote_root at a larger filesystem",
    }


def test_exactly_the_minimum_is_enough():
    assert check("disk", free_gb=300.0, min_free_gb=300)["ok"]
    assert not check("disk", free_gb=299.9, min_free_gb=300)["ok"]
    assert not check("disk", df={"stderr": "skipped"}, free_gb=500.0)["ok"]


# --- df -------------------------------------------------------------------------------------


def test_free_gb_is_the_last_lines_fourth_column_in_kib_as_gb():
    assert df.df_free_gb(df_result(488281250)) == 500.0
    assert df.df_free_gb(df_result(1234567)) == 1.3
    assert df.df_free_gb({"stdout_lines": [HEADER, "/dev/a 1 1 0 100% /"]}) == 0.0


def test_free_gb_is_zero_when_df_printed_no_figure():
    assert df.df_free_gb({"rc": 1, "stdout_lines": [], "stderr": "df: no such file"}) == 0.0
    assert df.df_free_gb({"rc": 0, "stdout_lines": [HEADER]}) == 0.0
    assert df.df_free_gb(SKIPPED) == 0.0


# --- the role's vars wire the probes into the filters ---------------------------------------

PLAY = """
- name: Evaluate the role's vars on probes as the tasks register them
  hosts: all
  connection: local
  gather_facts: false
  vars_files:
    - {vars_file}
  vars:
    cosmos_preflight_engine: docker
    cosmos_preflight_engine_service: docker
    cosmos_preflight_gpu_count: "{gpu_count}"
    cosmos_preflight_gpu_flags: [--gpus, all]
    cosmos_preflight_nvidia_smi: nvidia-smi
    cosmos_preflight_min_driver: "535"
    cosmos_preflight_nvidia_ctk: nvidia-ctk
    cosmos_preflight_cdi_specs: [/etc/cdi/nvidia.yaml]
    cosmos_preflight_image_source: local
    cosmos_preflight_remote_root: /srv/cosmos
    cosmos_preflight_min_free_gb: 300
    cosmos_preflight_engine_probe: {engine}
    cosmos_preflight_driver_probe: {driver}
    cosmos_preflight_cdi_probe: {skipped}
    cosmos_preflight_git_probe: {skipped}
  tasks:
    - name: Write what the vars hold before df ran
      ansible.builtin.copy:
        content: "{{{{ {{'ready': cosmos_preflight_toolkit_ready}} | to_json }}}}"
        dest: "{{{{ out }}}}.before"
        mode: "0600"
    - name: Read the disk
      ansible.builtin.command:
        argv: [df, -Pk, /]
      register: cosmos_preflight_df
      changed_when: false
    - name: Write what the vars hold
      ansible.builtin.copy:
        content: >-
          {{{{ {{'checks': cosmos_preflight_checks, 'ready': cosmos_preflight_toolkit_ready,
          'driver': cosmos_preflight_driver_version,
          'free_gb': cosmos_preflight_free_gb}} | to_json }}}}
        dest: "{{{{ out }}}}"
        mode: "0600"
"""


def _evaluate(tmp_path: Path, gpu_count: int, driver: dict) -> tuple[dict, dict]:
    play = PLAY.format(
        vars_file=COLLECTION / "roles/cosmos_preflight/vars/main.yml",
        gpu_count=gpu_count,
        engine=json.dumps(RUNNING),
        driver=json.dumps(driver),
        skipped=json.dumps(SKIPPED),
    )
    out = run_local_play(tmp_path, play)
    return json.loads(out.read_text()), json.loads(Path(f"{out}.before").read_text())


def test_the_vars_judge_registered_and_skipped_probes(tmp_path):
    seen, before = _evaluate(tmp_path, 2, SMI_OK)
    assert before == {"ready": True}
    assert seen["ready"] is True
    assert seen["driver"] == "550.54.15"
    assert isinstance(seen["free_gb"], float)
    assert [seen["checks"][name]["ok"] for name in ("engine", "driver", "toolkit", "git")] == [
        True
    ] * 4
    assert seen["checks"]["git"]["skipped"]
    assert f"{seen['free_gb']} GB free at /srv/cosmos" in seen["checks"]["disk"]["message"]


def test_the_vars_skip_the_gpu_checks_of_a_host_without_gpus(tmp_path):
    seen, _ = _evaluate(tmp_path, 0, SKIPPED)
    assert seen["driver"] == ""
    assert seen["checks"]["driver"] == {
        "ok": True,
        "skipped": True,
        "message": "no GPU (cosmos_gpu_count 0): skipped",
    }
    assert seen["checks"]["toolkit"] == seen["checks"]["driver"]
