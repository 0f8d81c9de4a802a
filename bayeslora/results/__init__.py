"""The results side: run records -> summary -> tables, figures and the paper report.

Data flows one way: the training side writes records (:mod:`bayeslora.records`) and this package
reads them; nothing on the training side imports from here.
"""
