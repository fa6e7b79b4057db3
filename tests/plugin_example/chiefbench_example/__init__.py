"""An example user package for chiefbench's plug-in paths, kept outside ``framework/`` on purpose.

Nothing in chiefbench imports it by name; the tests name it in the config, as a user would::

    queue._target_=chiefbench_example.designs.ExamplePipeDesign
    payload._target_=chiefbench_example.payloads.ticks          (or chiefbench_example.payloads.TickKind)
    payload=rollout payload.env_module=chiefbench_example.envs payload.env_id=ChiefbenchCountdown-v0

and ``tests/plugin_example/conf`` is a user config directory (``--config-dir``) with ``queue/example_pipe.yaml``,
``payload/ticks.yaml`` and ``experiment/mine.yaml``. The tests put ``tests/plugin_example`` on ``sys.path``
(``PYTHONPATH`` for subprocesses).
"""
