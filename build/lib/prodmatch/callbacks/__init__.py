"""prodmatch.callbacks"""
