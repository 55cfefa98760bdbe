# the standard library of python-3.12 would live here (viewctl example placeholder)
