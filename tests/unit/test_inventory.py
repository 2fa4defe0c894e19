"""The inventory is read through Ansible and checked before anything runs: every problem
names the inventory, the host, the variable and the fix."""

from __future__ import annotations

import textwrap

import pytest

from cosmos_driver.errors import ConfigurationError, ValidationError
from cosmos_driver.inventory import HOST_NAME_RULE, gpu_count, load_inventory


def write(tmp_path, text):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_gpu_counts_come_from_the_inventory_with_one_by_default(tmp_path):
    path = write(
        tmp_path,
        """
        all:
          hosts:
            gpu-a: {cosmos_gpu_count: 4}
            gpu-b: {cosmos_gpu_count: "2"}
            gpu-c: {}
        """,
    )
    inventory = load_inventory(path)
    assert inventory.gpu_counts == {"gpu-a": 4, "gpu-b": 2, "gpu-c": 1}


def test_an_inventory_without_hosts_is_an_error_that_says_how_to_add_them(tmp_path):
    path = write(tmp_path, "all:\n  children: {}\n")
    with pytest.raises(ConfigurationError, match="the inventory lists no hosts; add your GPU"):
        load_inventory(path)


def test_every_bad_gpu_count_is_named_with_host_and_fix(tmp_path):
    path = write(
        tmp_path,
        """
        all:
          hosts:
            words: {cosmos_gpu_count: two}
            huge: {cosmos_gpu_count: 1000}
            template: {cosmos_gpu_count: "{{ lookup('pipe', 'id') }}"}
        """,
    )
    with pytest.raises(ValidationError) as raised:
        load_inventory(path)
    assert str(raised.value).splitlines() == [
        f"{path}: host huge: cosmos_gpu_count: 1000 is out of range; a host has 0 to 64 GPUs",
        f"{path}: host template: cosmos_gpu_count: \"{{{{ lookup('pipe', 'id') }}}}\" is not "
        "a whole number; set it to the number of GPUs of the host (0 to 64)",
        f"{path}: host words: cosmos_gpu_count: 'two' is not a whole number; set it to the "
        "number of GPUs of the host (0 to 64)",
    ]


@pytest.mark.parametrize("name", ["gpu*", "a,b", "../x", "a/b", "!gpu", ".hidden"])
def test_host_names_that_would_be_patterns_or_paths_are_refused(tmp_path, name):
    path = write(tmp_path, f"all:\n  hosts:\n    '{name}': {{}}\n")
    with pytest.raises(ValidationError) as raised:
        load_inventory(path)
    assert str(raised.value).endswith(HOST_NAME_RULE)


@pytest.mark.parametrize("raw", [True, 1.5, [1], None, -1])
def test_gpu_count_takes_only_whole_numbers(raw):
    count, problem = gpu_count({"cosmos_gpu_count": raw})
    assert count == 1 and problem


def test_a_slurm_login_host_gives_the_cluster_settings(tmp_path):
    path = write(
        tmp_path,
        """
        all:
          hosts:
            login: {cosmos_backend: slurm, cosmos_gpu_count: 4, cosmos_slurm_max_parallel: "3"}
            gpu-a: {cosmos_backend: ssh}
        """,
    )
    slurm = load_inventory(path).slurm
    assert (slurm.login, slurm.max_parallel, slurm.gpus_per_node) == ("login", 3, 4)
    assert load_inventory(write(tmp_path, "all:\n  hosts:\n    a: {}\n")).slurm is None


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (
            "login: {cosmos_backend: kubernetes}",
            "host login: cosmos_backend: 'kubernetes' is not a backend; set it to ssh",
        ),
        (
            "login: {cosmos_backend: slurm, cosmos_slurm_max_parallel: 0}",
            "host login: cosmos_slurm_max_parallel: 0 is not a whole number of at least 1",
        ),
        (
            "a: {cosmos_backend: slurm}\n    b: {cosmos_backend: slurm}",
            "hosts a, b: cosmos_backend: slurm is set on more than one host",
        ),
    ],
)
def test_a_wrong_backend_setting_names_inventory_host_variable_and_fix(tmp_path, hosts, message):
    path = write(tmp_path, f"all:\n  hosts:\n    {hosts}\n")
    with pytest.raises(ValidationError) as raised:
        load_inventory(path)
    assert any(p.startswith(f"{path}: ") and message in p for p in raised.value.problems), (
        raised.value.problems
    )
