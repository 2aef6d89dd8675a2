"""Framework integrations: ``goodjob_mp.contrib.django``, ``.flask``, ``.starlette`` (and
``.fastapi``). Each imports its framework; ``import goodjob_mp`` never imports this package."""
