"""``python -m goodjob_mp``: the ``goodjob-supervisor`` command line."""

from goodjob_mp.cli import main

if __name__ == "__main__":
    main(prog_name="goodjob-supervisor")
