"""What train.py, test.py and dataset.py share on the command line: an impossible argument is refused in
one line on stderr, with exit code 2, before any work is done."""
import argparse


class Parser(argparse.ArgumentParser):
    """argparse, whose errors are one line instead of the whole usage block and then the error."""

    def error(self, message):
        self.exit(2, f"error: {message}\n")
