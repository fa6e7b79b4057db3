"""Queue designs behind one interface (``framework.queues.base``), one module per design.

The built-in designs are the ``_target_`` of each ``conf/queue/<name>.yaml``; a design of your own
joins with ``queue._target_=my_pkg.MyDesign``.
"""
