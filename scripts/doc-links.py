#!/usr/bin/env python3
"""Every relative link of the repository's Markdown files names a file or folder that exists
(CI runs this: fixtures/README.md cites SEMANTICS.md and FORMAT.md, the pages the reference and
the checkers are written from).

python3 scripts/doc-links.py     (exit 0: every link resolves; 1: the broken ones are listed)
"""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pages = subprocess.run(["git", "ls-files", "*.md"], cwd=root, capture_output=True, text=True,
                       check=True).stdout.split()
link = re.compile(r"\]\(([^)\s]+)\)")
broken, checked = [], 0
for page in pages:
    with open(os.path.join(root, page), encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            for target in link.findall(line):
                if "://" in target or target.startswith(("#", "mailto:")):
                    continue
                checked += 1
                path = os.path.join(root, os.path.dirname(page), target.split("#")[0])
                if not os.path.exists(path):
                    broken.append(f"{page}:{number}: {target} does not exist")
for b in broken:
    print(b)
print(f"doc-links: {checked} relative links in {len(pages)} pages, {len(broken)} broken")
sys.exit(1 if broken else 0)
