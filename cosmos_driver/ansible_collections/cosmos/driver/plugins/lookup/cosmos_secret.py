"""Ask the cosmos driver for a secret by name (see cosmos_driver/secret_channel.py).

Outside the driver (plain ansible-playbook) there is no channel and the lookup returns its
default, so a playbook can fall back to an environment variable or a vault variable."""

DOCUMENTATION = r"""
name: cosmos_secret
short_description: A secret the cosmos driver serves for the length of one playbook run
description:
  - Reads the secret named by the term from the Unix socket in C(COSMOS_SECRET_SOCKET).
  - The secret never passes through a file, the environment or a command line.
options:
  _terms:
    description: Secret names, such as C(hf_token).
    required: true
  default:
    description: What to return when there is no channel or it has no such secret.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Use the token the driver holds, else HF_TOKEN
  ansible.builtin.debug:
    msg: "{{ lookup('cosmos_secret', 'hf_token', default='') | length }}"
"""

RETURN = r"""
_raw:
  description: One value per term.
  type: list
  elements: str
"""

import json
import os
import socket

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

SOCKET_ENV = "COSMOS_SECRET_SOCKET"


def ask(path, name):
    """The secret `name` from the channel at `path`, or None when it has none."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(path)
        conn.sendall(name.encode("utf-8") + b"\n")
        reply = conn.makefile("r", encoding="utf-8").readline()
    return json.loads(reply) if reply else None


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        default = kwargs.get("default", "")
        path = os.environ.get(SOCKET_ENV)
        values = []
        for term in terms:
            value = None
            if path:
                try:
                    value = ask(path, str(term))
                except (OSError, ValueError) as exc:
                    message = "cosmos_secret: the driver's secret channel did not answer: %s"
                    raise AnsibleError(message % exc) from exc
            values.append(default if value is None else value)
        return values
