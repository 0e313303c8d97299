import os
import sys

# providers.py and the shape lists are plain modules beside the benchmarks.
sys.path.insert(0, os.path.dirname(__file__))
