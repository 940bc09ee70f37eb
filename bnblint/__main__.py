from bnblint.cli import main

main()
