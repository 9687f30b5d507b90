"""Packages the framework and the project's jobs.

Dataflow workers install this package (`--setup_file ./setup.py`), so both
`beam_jobs` and `pipelines` import there exactly as they do on a laptop.
"""

import setuptools

setuptools.setup(
    name='beam-jobs',
    version='0.1.0',
    description='App Engine MapReduce one-off jobs, run on Apache Beam.',
    packages=setuptools.find_packages(include=['beam_jobs', 'beam_jobs.*',
                                               'pipelines', 'pipelines.*']),
    python_requires='>=3.10',
    install_requires=[
        'apache-beam[gcp]==2.77.0',
        'google-cloud-datastore==2.27.0',
        'google-cloud-ndb==2.7.1',
    ],
    entry_points={'console_scripts': ['beam-jobs=beam_jobs.cli:main']},
)
