"""What a job compiles to: read → map → shuffle → reduce → stored output.

    steps.py         map, shuffle and reduce over entities or models: JobSteps
    transforms.py    RunJob (a source's read, then the steps) and MapReduce
    store_output.py  StoreOutput: the report collapsed, capped and written
"""
