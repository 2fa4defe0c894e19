"""The installed `cosmos` command: the task namespace behind an Invoke Program."""

from invoke import Program

from cosmos_driver import __version__
from cosmos_driver.tasks import namespace

program = Program(namespace=namespace, version=__version__, name="cosmos", binary="cosmos")


def main() -> None:
    program.run()


if __name__ == "__main__":
    main()
