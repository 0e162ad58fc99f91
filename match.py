"""Write the top-N matches of every company card to a CSV: `python match.py experiment=title_cat top_n=20`."""

from prodmatch.match import main

if __name__ == "__main__":
    main()
