"""`python -m dorag.evaluation.unseen_api reference` prints zorbel's reference page (Markdown)."""

import sys

from dorag.evaluation.unseen_api import reference_page

if __name__ == "__main__":
    if sys.argv[1:] != ["reference"]:
        sys.exit("usage: python -m dorag.evaluation.unseen_api reference > docs/zorbel-reference.md")
    sys.stdout.write(reference_page())
