"""`shipml init`: a working project (config, train.py, tests, suite) and its CI pipelines.

detect.py reads the data; project.py writes the project; ci.py renders the pipelines from
templates/. This room never imports the pipeline or the stages: it writes files that run them.
"""
