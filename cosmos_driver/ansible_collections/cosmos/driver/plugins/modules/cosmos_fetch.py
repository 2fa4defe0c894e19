"""Documentation of the cosmos_fetch action (plugins/action/cosmos_fetch.py).

An action runs on the controller and has no module code; ansible-doc reads an action's
documentation from the module file of the same name, as ansible.builtin.fetch does."""

DOCUMENTATION = r"""
module: cosmos_fetch
short_description: Fetch a file the host described (size, sha256) without a remote stat
description:
  - Copies one file from the host to the controller over the connection's file transfer and
    checks its size and SHA-256 against what the host reported, on the controller.
  - Saves the stat module run that M(ansible.builtin.fetch) makes first; with privilege
    escalation it hands over to M(ansible.builtin.fetch).
  - The file is written to a temporary name beside O(dest) and renamed when it checks out.
version_added: 0.1.0
options:
  src: {description: The file on the host., required: true, type: str}
  dest: {description: Where to put it on the controller (a file path)., required: true, type: str}
  size: {description: Its size in bytes, as the host reported it., required: true, type: int}
  sha256: {description: Its SHA-256, as the host reported it., required: true, type: str}
author: cosmos-driver
"""

EXAMPLES = r"""
- name: Fetch the run's bundle the collect step described
  cosmos.driver.cosmos_fetch:
    src: /var/lib/cosmos/runs/r1/bundle.tar
    dest: /home/me/.cosmos/runs/r1/bundle.tar
    size: "{{ collected.bundle.size }}"
    sha256: "{{ collected.bundle.sha256 }}"
"""

RETURN = r"""
dest:
  description: Where the file was written.
  returned: success
  type: str
size:
  description: Bytes fetched.
  returned: success
  type: int
sha256:
  description: The SHA-256 the fetched file was checked against.
  returned: success
  type: str
"""
