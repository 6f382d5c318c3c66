"""What train.py, test.py and dataset.py share on the command line: an impossible argument is refused in
one line on stderr, with exit code 2, before any work is done."""
import argparse
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse, whose errors are one line instead of the whole usage block and then the error."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")


def file_in_the_way(folder):
    """The file at folder or at a folder above it, which keeps folder from being made; None when there is none."""
    folder = Path(folder)
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
