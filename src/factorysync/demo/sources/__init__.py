"""Row generators of the demo data sets, one module per dashboard domain.

Every generator takes a :class:`~factorysync.demo.sources.base.SourceContext`
and yields records; :mod:`factorysync.demo.datasets` says which file each one fills.
"""
