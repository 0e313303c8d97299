import os
import sys

# The shared case list and the oracle are plain modules beside the tests.
sys.path.insert(0, os.path.dirname(__file__))
