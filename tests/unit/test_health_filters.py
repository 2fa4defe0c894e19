"""cosmos_health's report parts (plugins/filter/health_report.py): the GPU problems, the smoke
test, the checkpoint state and problems, the disk, and the notes, branch by branch."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from cosmos_driver.content import COLLECTION
from tests.fakes.plays import load_filter, run_local_play

health = load_filter("health_report")

SKIPPED = {"skipped": True, "changed": False, "false_condition": "cosmos_health_has_gpus"}
GPU = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total": 81559, "uuid": "GPU-0"}
SMOKE_OK = {
    "changed": False,
    "exit_code": 0,
    "stdout": "GPU 0: NVIDIA H100 (UUID: GPU-0)\nGPU 1: NVIDIA H100 (UUID: GPU-1)\n",
    "stderr": "",
    "timed_out": False,
}
VERIFIED = {"changed": False, "ok": True, "missing": [], "wrong_size": [], "wrong_hash": []}
MISMATCH = {
    "changed": False,
    "ok": False,
    "missing": ["a/model.pt", "b.json"],
    "wrong_size": [{"path": "c.bin", "size": 1, "expected": 2}],
    "wrong_hash": [{"path": "d.bin", "sha256": "00"}],
    "unexpected": ["e.tmp"],
    "unreadable": [{"path": "f.bin", "error": "Permission denied"}],
}


def probes(**changes) -> dict:
    """A two-GPU host with the image and verified checkpoints, ready; `changes` replace keys."""
    base = {
        "has_gpus": True,
        "gpu_count": 2,
        "nvidia_smi": "nvidia-smi",
        "image": "cosmos:1",
        "smoke_timeout": 120,
        "check_checkpoints": True,
        "checkpoint_manifest": "/m/transfer1.yaml",
        "checkpoint_dir": "/c",
        "remote_root": "/r",
        "min_free_gb": 50,
        "host": "gpu-1",
        "smi": {"rc": 0, "stdout": "0, NVIDIA H100 80GB HBM3\n", "stderr": ""},
        "gpu_parse_error": "",
        "gpus_seen": [GPU, {**GPU, "index": 1, "uuid": "GPU-1"}],
        "image_probe": {"changed": False, "exists": True, "image_labels": {}},
        "smoke": SMOKE_OK,
        "manifest": {"files": [{"path": "a/model.pt", "size": 1, "sha256": "00"}]},
        "checkpoints": VERIFIED,
        "df": {"rc": 0, "stdout_lines": ["h", "/dev/a 1 1 488281250 1% /"], "stderr": ""},
        "free_gb": 500.0,
    }
    return {**base, **changes}


def test_a_ready_host_has_no_problems_and_no_notes():
    p = probes()
    assert health.health_problems(p) == []
    assert health.health_notes(p) == []
    assert health.checkpoints_state(p) == "verified"
    assert health.smoke_test(p) == {
        "ok": True,
        "skipped": False,
        "message": "2 GPU(s) seen in a container of cosmos:1",
    }


def test_the_filters_are_registered_under_role_prefixed_names():
    assert health.FilterModule().filters() == {
        "cosmos_health_smoke_test": health.smoke_test,
        "cosmos_health_checkpoints_state": health.checkpoints_state,
        "cosmos_health_checkpoint_problems": health.checkpoint_problems,
        "cosmos_health_problems": health.health_problems,
        "cosmos_health_notes": health.health_notes,
    }


# --- GPUs -----------------------------------------------------------------------------------


def test_a_host_without_gpus_has_no_gpu_problem_and_a_note():
    p = probes(has_gpus=False, gpu_count=0, smi=SKIPPED, gpus_seen=[], smoke=SKIPPED)
    assert health.gpu_problems(p) == []
    assert health.health_problems(p) == []
    assert health.health_notes(p) == ["no GPU (cosmos_gpu_count 0)"]


def test_a_failed_nvidia_smi_is_quoted_with_the_fix():
    p = probes(smi={"rc": 9, "stdout": "", "stderr": " NVIDIA-SMI has failed \n"}, gpus_seen=[])
    assert health.gpu_problems(p) == [
        "nvidia-smi (nvidia-smi) failed (rc 9: NVIDIA-SMI has failed): install or repair the"
        " NVIDIA driver, or set cosmos_gpu_count 0 for a host without GPUs"
    ]


def test_a_failed_nvidia_smi_falls_back_to_stdout_then_to_the_module_msg():
    text = probes(smi={"rc": 6, "stdout": "No devices were found", "stderr": ""})
    missing = probes(smi={"rc": 2, "stdout": "", "stderr": "", "msg": "[Errno 2] No such file"})
    assert "(rc 6: No devices were found)" in health.gpu_problems(text)[0]
    assert "(rc 2: [Errno 2] No such file)" in health.gpu_problems(missing)[0]
    assert "(rc none: )" in health.gpu_problems(probes(smi={}))[0]


def test_unreadable_nvidia_smi_output_is_named():
    p = probes(gpu_parse_error="nvidia-smi line 'x' has 1 values for 5 fields", gpus_seen=[])
    assert health.gpu_problems(p) == [
        "cannot read the output of nvidia-smi: nvidia-smi line 'x' has 1 values for 5 fields"
    ]


def test_another_gpu_count_than_the_inventory_says_is_named():
    p = probes(gpu_count="3")
    assert health.gpu_problems(p) == [
        "nvidia-smi shows 2 GPUs but the inventory says cosmos_gpu_count 3: fix the inventory,"
        " or find the missing GPUs"
    ]
    assert health.gpu_problems(probes(gpu_count="2")) == []


def test_each_gpu_branch_says_something_else():
    found = [
        health.gpu_problems(probes(smi={"rc": 9, "stderr": "failed"})),
        health.gpu_problems(probes(gpu_parse_error="bad line")),
        health.gpu_problems(probes(gpu_count=3)),
    ]
    assert [len(problems) for problems in found] == [1, 1, 1]
    assert len({problems[0] for problems in found}) == 3


# --- the smoke test -------------------------------------------------------------------------


def test_the_smoke_test_is_skipped_without_gpus_or_without_the_image():
    no_gpu = health.smoke_test(probes(has_gpus=False, smoke=SKIPPED))
    no_image = health.smoke_test(probes(image_probe={"exists": False}, smoke=SKIPPED))
    assert no_gpu == {
        "ok": True,
        "skipped": True,
        "message": "no GPU (cosmos_gpu_count 0): skipped",
    }
    assert no_image == {"ok": True, "skipped": True, "message": "no image: skipped"}


def test_a_smoke_test_past_its_timeout_says_check_the_engine():
    smoke = {"exit_code": None, "stdout": "", "stderr": "", "timed_out": True}
    assert health.smoke_test(probes(smoke=smoke, smoke_timeout=30)) == {
        "ok": False,
        "skipped": False,
        "message": "the smoke-test container ran past 30 s: check the engine and the NVIDIA"
        " container toolkit",
    }


def test_a_failed_smoke_test_quotes_the_container():
    smoke = {"exit_code": 125, "stdout": "", "stderr": "could not select device driver\n"}
    assert health.smoke_test(probes(smoke=smoke)) == {
        "ok": False,
        "skipped": False,
        "message": "the GPU smoke-test container failed (exit 125: could not select device"
        " driver): check the NVIDIA container toolkit and cosmos_gpu_flags",
    }


def test_a_failed_smoke_test_quotes_stdout_cut_to_300_characters():
    smoke = {"exit_code": 1, "stdout": "word " * 100, "stderr": "", "timed_out": False}
    message = health.smoke_test(probes(smoke=smoke))["message"]
    quoted = message.removeprefix("the GPU smoke-test container failed (exit 1: ")
    assert quoted.endswith("...): check the NVIDIA container toolkit and cosmos_gpu_flags")
    assert len(quoted.split(")")[0]) <= 300


def test_truncate_is_jinjas():
    template = jinja2.Environment(autoescape=True).from_string("{{ s | truncate(300) }}")
    texts = ["short", "x" * 305, "x" * 306, "word " * 61, "word " * 100, "a" * 290 + " " + "b" * 20]
    assert [health.truncate(t, 300) for t in texts] == [template.render(s=t) for t in texts]
    assert health.truncate("word " * 100, 300) != "word " * 100


def test_a_smoke_test_that_saw_no_gpu_says_check_the_flags():
    smoke = {"exit_code": 0, "stdout": "No devices were found\n", "stderr": "", "timed_out": False}
    assert health.smoke_test(probes(smoke=smoke)) == {
        "ok": False,
        "skipped": False,
        "message": "the smoke-test container saw no GPU: check cosmos_gpu_flags (for example"
        " --gpus all)",
    }


def test_only_lines_that_start_with_gpu_are_counted():
    smoke = {**SMOKE_OK, "stdout": "header\nGPU 0: x\n  GPU 1: indented\nnot GPU 2: y\n"}
    assert (
        health.smoke_test(probes(smoke=smoke))["message"]
        == "1 GPU(s) seen in a container of cosmos:1"
    )


def test_a_failed_smoke_test_is_a_problem_and_a_skipped_one_is_not():
    failed = probes(smoke={"exit_code": 125, "stdout": "", "stderr": "nope"})
    assert health.health_problems(failed) == [health.smoke_test(failed)["message"]]
    assert health.health_problems(probes(has_gpus=False, gpu_count=0, smoke=SKIPPED)) == []


# --- the image ------------------------------------------------------------------------------


def test_a_missing_image_is_a_problem_and_skips_the_smoke_test():
    p = probes(image_probe={"changed": False, "exists": False, "image_labels": {}}, smoke=SKIPPED)
    assert health.health_problems(p) == [
        "image cosmos:1 is not on the host: run `invoke setup` (its image stage)"
    ]


# --- the checkpoints ------------------------------------------------------------------------


def test_each_checkpoint_state():
    states = [
        health.checkpoints_state(probes(check_checkpoints=False, checkpoints=SKIPPED)),
        health.checkpoints_state(probes(checkpoint_manifest="", manifest={}, checkpoints=SKIPPED)),
        health.checkpoints_state(probes(manifest={"files": []}, checkpoints=SKIPPED)),
        health.checkpoints_state(probes(manifest={"ignore": []}, checkpoints=SKIPPED)),
        health.checkpoints_state(probes(checkpoints={"failed": True, "msg": "no root"})),
        health.checkpoints_state(probes()),
        health.checkpoints_state(probes(checkpoints=MISMATCH)),
    ]
    assert states == [
        "skipped",
        "no manifest",
        "empty manifest",
        "empty manifest",
        "failed",
        "verified",
        "mismatch",
    ]


def test_checkpoint_problems_name_each_file_by_kind():
    assert health.checkpoint_problems(MISMATCH) == [
        "missing: a/model.pt",
        "missing: b.json",
        "wrong size: c.bin",
        "wrong sha256: d.bin",
        "unexpected: e.tmp",
        "unreadable: f.bin",
    ]
    assert health.checkpoint_problems(SKIPPED) == []
    assert health.checkpoint_problems(VERIFIED) == []


def test_a_checkpoint_mismatch_is_a_problem_that_counts_the_files():
    assert health.health_problems(probes(checkpoints=MISMATCH)) == [
        "checkpoints in /c do not match /m/transfer1.yaml (6 files, see checkpoint_problems):"
        " run `invoke setup` (its checkpoints stage)"
    ]


def test_a_verification_that_failed_is_a_problem_with_its_msg():
    failed = probes(checkpoints={"failed": True, "msg": "root /c does not exist"})
    assert health.health_problems(failed) == [
        "cannot verify the checkpoints in /c: root /c does not exist"
    ]
    assert health.health_problems(probes(checkpoints={"failed": True})) == [
        "cannot verify the checkpoints in /c: "
    ]


def test_an_empty_manifest_is_a_problem_that_says_how_to_record_one():
    p = probes(manifest={"files": []}, checkpoints=SKIPPED)
    assert health.health_problems(p) == [
        "no files in the manifest /m/transfer1.yaml, so the checkpoints in /c are unverified:"
        " record one with `invoke checkpoints.manifest --host gpu-1` from a tree you trust and"
        " commit it"
    ]


def test_unchecked_checkpoints_are_notes_not_problems():
    off = probes(check_checkpoints=False, checkpoints=SKIPPED)
    none = probes(checkpoint_manifest="", manifest={}, checkpoints=SKIPPED)
    assert health.health_problems(off) == health.health_problems(none) == []
    assert health.health_notes(off) == [
        "checkpoints not checked (cosmos_health_check_checkpoints false)"
    ]
    assert health.health_notes(none) == [
        "checkpoints not checked: no manifest (cosmos_checkpoint_manifest is empty)"
    ]


# --- the disk -------------------------------------------------------------------------------


def test_an_unreadable_disk_says_setup_creates_the_folder():
    df = {"rc": 1, "stdout_lines": [], "stderr": "df: /r: No such file or directory\n"}
    assert health.health_problems(probes(df=df, free_gb=0.0)) == [
        "cannot read the free space at /r: df: /r: No such file or directory (run `invoke setup`,"
        " whose preflight creates it)"
    ]


def test_a_full_disk_is_a_problem_and_the_minimum_is_enough():
    assert health.health_problems(probes(free_gb=1.3, min_free_gb="50")) == [
        "only 1.3 GB free at /r, below 50 GB: free space there"
    ]
    assert health.health_problems(probes(free_gb=50.0, min_free_gb=50)) == []


# --- all at once ----------------------------------------------------------------------------


def test_every_problem_at_once_in_report_order():
    p = probes(
        gpu_count=3,
        image_probe={"exists": False},
        smoke=SKIPPED,
        checkpoints=MISMATCH,
        free_gb=1.0,
    )
    problems = health.health_problems(p)
    assert [problem.split(" ")[0] for problem in problems] == [
        "nvidia-smi",
        "image",
        "checkpoints",
        "only",
    ]


def test_gpu_smoke_checkpoint_and_disk_problems_in_report_order():
    p = probes(
        gpu_count=1,
        smoke={"exit_code": 125, "stdout": "", "stderr": "nope"},
        manifest={"files": []},
        checkpoints=SKIPPED,
        df={"rc": 1, "stderr": "df: no"},
    )
    problems = health.health_problems(p)
    assert [problem.split(" ")[0] for problem in problems] == ["nvidia-smi", "the", "no", "cannot"]


def test_notes_for_a_host_without_gpus_and_checkpoints_off():
    p = probes(has_gpus=False, gpu_count=0, smoke=SKIPPED, check_checkpoints=False)
    assert health.health_notes(p) == [
        "no GPU (cosmos_gpu_count 0)",
        "checkpoints not checked (cosmos_health_check_checkpoints false)",
    ]


# --- the role's vars wire the probes into the filters ---------------------------------------

PLAY = """
- name: Evaluate the role's vars on probes as the tasks register them
  hosts: all
  connection: local
  gather_facts: false
  vars_files:
    - {vars_file}
  vars:
    cosmos_health_gpu_count: {gpu_count}
    cosmos_health_nvidia_smi: nvidia-smi
    cosmos_health_image: cosmos:1
    cosmos_health_smoke_timeout: 120
    cosmos_health_check_checkpoints: "yes"
    cosmos_health_checkpoint_manifest: /m/transfer1.yaml
    cosmos_health_checkpoint_dir: /c
    cosmos_health_remote_root: /nonexistent/cosmos
    cosmos_health_min_free_gb: 50
    cosmos_health_gpus: {gpus}
    cosmos_health_gpu_parse_error: ""
    cosmos_health_smi: {smi}
    cosmos_health_image_probe: {{exists: true}}
    cosmos_health_smoke: {smoke}
    cosmos_health_checkpoints: {skipped}
  tasks:
    - name: Read the disk of a folder that does not exist
      ansible.builtin.command:
        argv: [df, -Pk, /nonexistent/cosmos]
      register: cosmos_health_df
      changed_when: false
      failed_when: false
    - name: Write what the vars hold
      ansible.builtin.copy:
        content: >-
          {{{{ {{'smoke': cosmos_health_smoke_test, 'state': cosmos_health_checkpoints_state,
          'checkpoint_problems': cosmos_health_checkpoint_problems,
          'free_gb': cosmos_health_free_gb, 'problems': cosmos_health_problems,
          'notes': cosmos_health_notes}} | to_json }}}}
        dest: "{{{{ out }}}}"
        mode: "0600"
"""


def _evaluate(tmp_path: Path, gpu_count: int, smi: dict, smoke: dict) -> dict:
    play = PLAY.format(
        vars_file=COLLECTION / "roles/cosmos_health/vars/main.yml",
        gpu_count=gpu_count,
        gpus=json.dumps([GPU]),
        smi=json.dumps(smi),
        skipped=json.dumps(SKIPPED),
        smoke=json.dumps(smoke),
    )
    out = run_local_play(tmp_path, play)
    return json.loads(out.read_text())


def test_the_vars_report_a_missing_manifest_read_and_an_unreadable_disk(tmp_path):
    """No cosmos_health_manifest (its set_fact did not run) and a df that printed nothing."""
    smi = {"rc": 0, "stdout": "0, NVIDIA H100 80GB HBM3", "stderr": ""}
    seen = _evaluate(tmp_path, 1, smi, {**SMOKE_OK, "stdout": "GPU 0: x\n"})
    assert seen["smoke"] == {
        "ok": True,
        "skipped": False,
        "message": "1 GPU(s) seen in a container of cosmos:1",
    }
    assert seen["state"] == "empty manifest"
    assert seen["checkpoint_problems"] == []
    assert seen["free_gb"] == 0.0
    assert [problem.split(" ")[0] for problem in seen["problems"]] == ["no", "cannot"]
    assert seen["problems"][1].startswith("cannot read the free space at /nonexistent/cosmos: df:")
    assert seen["notes"] == []


def test_the_vars_note_a_host_without_gpus(tmp_path):
    seen = _evaluate(tmp_path, 0, SKIPPED, SKIPPED)
    assert seen["smoke"] == {
        "ok": True,
        "skipped": True,
        "message": "no GPU (cosmos_gpu_count 0): skipped",
    }
    assert seen["notes"] == ["no GPU (cosmos_gpu_count 0)"]
    assert seen["problems"][0].startswith("no files in the manifest /m/transfer1.yaml")
