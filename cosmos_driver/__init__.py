"""cosmos-driver: run NVIDIA Cosmos Transfer batches on your own GPU hosts through Ansible."""

__version__ = "0.1.0"
