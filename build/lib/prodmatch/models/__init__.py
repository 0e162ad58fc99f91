"""prodmatch.models"""
