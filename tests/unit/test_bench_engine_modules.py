"""The engine-modules bench's pure parts: the interleaved order, the figures it prints, the
facts it compares, the ldd listing and the collections it takes from the ansible wheel. Its
timings need the lab; these need nothing."""

from __future__ import annotations

import zipfile

import pytest

from bench.engine_modules import (
    extract_collections,
    find_collections,
    has_collections,
    ldd_paths,
    parse_task_name,
    same_facts,
    schedule,
    summarize,
    task_name,
    timed_task,
)


def test_schedule_warms_up_then_interleaves_with_the_first_side_alternating():
    order = schedule(("image_info",), 2)
    assert order == [
        ("floor", "ping", -1),
        ("image_info", "community", -1),
        ("image_info", "cosmos", -1),
        ("floor", "ping", 0),
        ("image_info", "cosmos", 0),
        ("image_info", "community", 0),
        ("floor", "ping", 1),
        ("image_info", "community", 1),
        ("image_info", "cosmos", 1),
    ]


def test_task_names_round_trip_and_other_tasks_are_not_timed():
    assert parse_task_name(task_name("run_once", "cosmos", 3)) == ("run_once", "cosmos", 3)
    assert parse_task_name("Image") is None
    assert parse_task_name("probe absent engine cosmos") is None


def test_summary_leaves_out_the_warm_ups_and_takes_medians():
    durations = {
        task_name("image_info", "cosmos", -1): 9.0,
        task_name("image_info", "community", -1): 9.0,
        task_name("floor", "ping", -1): 9.0,
        task_name("floor", "ping", 0): 0.2,
        task_name("floor", "ping", 1): 0.3,
        task_name("floor", "ping", 2): 0.25,
        "Image": 30.0,
    }
    for index, (ours, theirs) in enumerate([(0.3, 0.4), (0.5, 0.5), (0.3, 0.4)]):
        durations[task_name("image_info", "cosmos", index)] = ours
        durations[task_name("image_info", "community", index)] = theirs
    rows = summarize(durations)
    assert rows["image_info"] == pytest.approx(
        {"cosmos_s": 0.3, "community_s": 0.4, "ratio": 0.75, "calls": 3}
    )
    assert rows["floor"] == pytest.approx({"ping_s": 0.25, "calls": 3})


def test_summary_skips_a_case_with_one_side_only():
    assert summarize({task_name("engine_info", "cosmos", 0): 0.3}) == {}


def test_the_run_once_pair_runs_the_same_command_without_network():
    ours = timed_task("run_once", "cosmos", 0)["cosmos.driver.cosmos_container"]
    theirs = timed_task("run_once", "community", 0)["community.docker.docker_container"]
    assert ours["command"] == theirs["command"]
    assert ours["engine_args"] == ["--network", "none"]
    assert theirs["network_mode"] == "none"
    assert (theirs["detach"], theirs["cleanup"]) == (False, True)


def test_same_facts_reads_each_modules_result_shape():
    image = {"Id": "sha256:ab", "Config": {"Labels": {"k": "v"}}}
    assert (
        same_facts(
            "image_info", {"image_labels": {"k": "v"}, "image_id": "sha256:ab"}, {"images": [image]}
        )
        == []
    )
    info = {"ServerVersion": "20.10", "Runtimes": {"runc": {}, "nvidia": {}}}
    assert (
        same_facts(
            "engine_info", {"version": "20.10", "runtimes": ["nvidia", "runc"]}, {"host_info": info}
        )
        == []
    )
    ours = {"stdout": "ok\n", "exit_code": 0}
    assert same_facts("run_once", ours, {"container": {"Output": "ok"}, "status": 0}) == []
    assert same_facts("run_once", ours, {"container": {"Output": "ok"}, "status": 1}) == [
        "run_once exit: 0 != 1"
    ]


def test_ldd_paths_names_the_library_files_and_skips_the_vdso():
    listing = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c)\n"
    )
    assert ldd_paths(listing) == ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]


def test_only_the_needed_collections_come_out_of_the_wheel(tmp_path):
    wheel = tmp_path / "ansible-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in (
            "community/docker",
            "containers/podman",
            "community/library_inventory_filtering_v1",
            "community/general",
        ):
            archive.writestr(f"ansible_collections/{name}/MANIFEST.json", "{}")
    extract_collections(wheel, tmp_path / "out")
    assert has_collections(tmp_path / "out")
    assert not (tmp_path / "out" / "ansible_collections" / "community" / "general").exists()


def test_absent_collections_without_fetching_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    with pytest.raises(SystemExit, match=r"pip download ansible==11\.13\.0 --no-deps"):
        find_collections(tmp_path, fetch=False)
