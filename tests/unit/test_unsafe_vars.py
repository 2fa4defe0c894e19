"""Extra vars written by the driver reach Ansible as data: a template in any value, however
it is combined or passed to a role, stays literal and runs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cosmos_driver.unsafe_vars import UNSAFE_TAG, dump_unsafe, write_unsafe

PLAYBOOK = """
- name: Echo the variables back
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write what Ansible made of them
      ansible.builtin.copy:
        content: "{{ {'env': base | combine(job_env), 'args': job_args} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def test_every_string_value_is_tagged_and_keys_stay_plain():
    text = dump_unsafe({"job_env": {"X": "{{ 7*7 }}"}, "n": 3, "args": ["a"]})
    assert f'X: {UNSAFE_TAG} "{{{{ 7*7 }}}}"' in text
    assert f'- {UNSAFE_TAG} "a"' in text
    assert "n: 3" in text
    assert f'{UNSAFE_TAG} "job_env"' not in text


def test_written_file_is_owner_only(tmp_path):
    path = tmp_path / "env" / "extravars"
    write_unsafe(path, {"a": "b"})
    assert path.stat().st_mode & 0o777 == 0o600


def test_templates_in_values_arrive_literally_and_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    out = tmp_path / "out.json"
    varsfile = tmp_path / "vars.yml"
    write_unsafe(
        varsfile,
        {
            "base": {"HOME_X": "{{ 40 + 2 }}"},
            "job_env": {"X": hostile, "Y": "{{ 7*7 }}"},
            "job_args": ["--prompt", hostile],
            "out": str(out),
        },
    )
    playbook = tmp_path / "echo.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    ansible = Path(sys.executable).with_name("ansible-playbook")
    subprocess.run(
        [
            str(ansible),
            *("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}"),
            *("-e", f"@{varsfile}", str(playbook)),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        timeout=120,
    )
    assert not marker.exists()
    assert json.loads(out.read_text(encoding="utf-8")) == {
        "env": {"HOME_X": "{{ 40 + 2 }}", "X": hostile, "Y": "{{ 7*7 }}"},
        "args": ["--prompt", hostile],
    }
