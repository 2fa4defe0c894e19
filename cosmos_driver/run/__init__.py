"""One run on one host: its types, spec, phase playbooks, collected files and verdict."""
