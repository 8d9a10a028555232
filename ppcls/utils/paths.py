"""Where the repository's files are (configs/, README.md) relative to the package."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
