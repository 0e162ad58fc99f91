"""prodmatch.reporting"""
