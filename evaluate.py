"""Evaluate retrieval with off-the-shelf encoders: `python evaluate.py -m experiment=img,title_cat,title_cat_tfidf`."""

from prodmatch.evaluate import main

if __name__ == "__main__":
    main()
