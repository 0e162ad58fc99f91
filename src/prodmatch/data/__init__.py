"""prodmatch.data"""
