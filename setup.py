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
        # The web console (`beam-jobs serve`).
        'starlette==1.10.0',
        'uvicorn==0.54.0',
        'jinja2==3.1.6',
        'markdown-it-py==4.3.0',
        'python-multipart==0.0.34',
        # A progress bar for `beam-jobs run` on a terminal.
        'rich==14.2.0',
    ],
    # The console's templates and static files.
    package_data={'beam_jobs.console': ['templates/*.html', 'static/*']},
    entry_points={'console_scripts': ['beam-jobs=beam_jobs.cli:main']},
)
