"""The README's Layout stays a true map of lifecycle/: every module named once
in its listing, and a run's walk (plan, start, follow, record, end) naming
none twice."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _layout() -> str:
    readme = (ROOT / 'README.md').read_text()
    layout = readme[readme.index('## Layout'):]
    return layout[:layout.index('\n## ', 1)] if '\n## ' in layout[1:] else layout


def _named(module: str, text: str) -> int:
    return len(re.findall(rf'\b{module}\.py\b', text))


def test_the_layout_names_every_lifecycle_module_once():
    layout = _layout()
    listing = layout[layout.index('lifecycle/        '):layout.index('compile/          ')]
    modules = sorted(path.stem for path in (ROOT / 'beam_jobs' / 'lifecycle').glob('*.py')
                     if path.stem != '__init__')
    assert {module: _named(module, listing) for module in modules} == \
        {module: 1 for module in modules}


def test_the_walk_of_a_run_names_each_module_once():
    layout = _layout()
    walk = layout[layout.index('    surface  '):layout.index('    beam_jobs/  ')]
    for step in ('plan', 'start', 'follow', 'record', 'end'):
        assert re.search(rf'^    {step} ', walk, re.M), step
    named = re.findall(r'\b(\w+)\.py\b', walk)
    assert named and len(named) == len(set(named)), named
