"""The exercise grader: exercises built from solutions, submissions graded by hidden checks.

Three commands::

    bookstore exercises build [--check]                  solutions/weekNN_*.ipynb -> exercises/
    bookstore exercises release DIR                      the learner's copy: no solutions, no checks
    bookstore grade SUBMISSIONS... --week N --out DIR    DIR/grades.csv, grades_wide.csv, feedback/

The modules, in the order a submission meets them: :mod:`~bookstore.grading.regions` turns
solution regions into TODO stubs; :mod:`~bookstore.grading.checks` is the API instructors
write hidden checks with, and the code that runs them; :mod:`~bookstore.grading.remote` is
the channel through which they reach the learner's kernel; :mod:`~bookstore.grading.worker`
grades one submission; :mod:`~bookstore.grading.batch` grades many in parallel;
:mod:`~bookstore.grading.report` turns results into scores, CSV and feedback;
:mod:`~bookstore.grading.release` writes what learners get.

Why the design is what it is (each point answers a complaint heard about nbgrader or otter):

* **Checks run in the grader, against the learner's kernel.** After the notebook has run top
  to bottom, one more cell starts a small agent in that kernel, which connects back to the
  grading worker; the checks run *in the worker* and look up ``find_book_title`` in the
  learner's namespace through it (:mod:`~bookstore.grading.remote`): calls go to the kernel,
  answers come back as data, and the worker decides pass or fail. Testing the learner's own
  functions, in the kernel they were defined in, is what keeps a grader from testing the
  instructor's function instead; deciding outside it is what keeps a notebook from grading
  itself. Nothing it prints, patches or leaves running changes a verdict.
* **Hidden means hidden.** Check source is read by the worker and executed there, in a
  private namespace; it never enters the sandbox. Failures are reported as the instructor's
  message or ``"TypeName: message"``, never a traceback. Feedback is built from titles and
  messages only.
* **A subprocess per submission.** An endless loop, ``sys.exit``, ``os._exit``, a notebook that
  deletes its working directory or is not JSON at all: each happens inside one worker, which
  reports a status (``timeout``, ``crashed``, ``invalid``, ``wrong-week``) and 0 points, or is
  killed with its whole process group at the hard deadline. The batch goes on; only the parent
  writes grades.csv and feedback, atomically.
* **Parallel, with progress.** ``--workers N`` graders at once, a progress bar on stderr,
  backing services (a bookstore cluster per worker slot) started once per batch.
* **A hung check costs one check.** Each check has its own timeout; a learner function that
  never returns fails that check and the others still run.
* **A hung cell costs one cell.** Each learner cell has a time limit (``--cell-timeout``):
  past it the cell is interrupted, as Jupyter's stop button does, and the notebook goes on,
  so the answers after it still earn their points; the notebook's limit is the backstop.

* **A sandbox per submission.** Each kernel runs in bubblewrap (:mod:`~bookstore.grading.sandbox`):
  its own PID namespace, so nothing it starts outlives its grading and it cannot reach the
  grader's processes; a read-only file system without the solutions, the checks, the other
  submissions and the out dir; limits on memory, CPU, file size and processes. Where that is
  impossible the batch grades anyway and marks every result "not isolated".
* **Feedback the learner can read.** Their own frames, cut short; gRPC errors as sentences;
  no line of the hidden checks (:mod:`~bookstore.grading.redact`).

What remains shared: the loopback network (RabbitMQ, MariaDB, the batch's clusters); each
week that needs a cluster gets one per worker slot, reset before every submission
(:mod:`~bookstore.grading.clusters`).
"""

import sys

# jsonschema (which nbformat imports) imports rfc3987_syntax when it is installed, as Jupyter's
# packages make it, and that module builds a parser at import: about 1.7 s of CPU in every
# process that reads a notebook, the grader's and each worker's, a third of what grading one
# submission costs here. It checks "iri" string formats only, which the notebook schema never
# uses. A module set to None in sys.modules fails to import at once; jsonschema treats it as
# optional and goes on without it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
