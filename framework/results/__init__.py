"""The reading side: run and sweep directories read back, gathered, compared and reported.

It reads files only and never imports the running side (``framework.engine``): ``io`` (a run
directory), ``metrics`` (figures from recorded tables), ``collect`` (one table per sweep), ``stats``
(medians, confidence intervals, comparisons), ``text`` (printed tables), ``report`` (report.html).
"""
