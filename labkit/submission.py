"""The tree the grader grades: which files of each lab are the student's own.

(The trust-core branch grows this module into the assembly of a submission; this table is the same.)
"""
from __future__ import annotations

# The files each lab's README says the student writes; everything else in exercises/<lab>/ is given.
STUDENT_FILES: dict[str, tuple[str, ...]] = {
    "01-docker": ("Dockerfile", ".dockerignore"),
    "02-compose": ("compose.yaml",),
    "03-swarm": ("stack.yaml",),
    "04-flask-serving": ("service/app.py", "service/cache.py"),
    "05-celery": ("tasks.py", "api.py"),
}
