"""The reading side: run and sweep directories read back, gathered, compared and reported.

It reads files only and never imports the running side (``framework.engine``): ``io`` (a run
directory), ``metrics`` (figures from what a run recorded), ``collect`` (one table per sweep),
``stats`` (medians, confidence intervals), ``compare`` (two sweeps side by side), ``checks`` (drift,
two groups, Little's law), ``text`` (printed tables), ``report`` (report.html); and the building
blocks the recorder writes with: ``stream`` (streamed parquet), ``latency`` (histograms),
``seqbooks`` (accounting by seq ranges).
"""
