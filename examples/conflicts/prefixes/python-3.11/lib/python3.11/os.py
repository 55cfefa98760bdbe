# the standard library of python-3.11 would live here (viewctl example placeholder)
