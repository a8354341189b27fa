from ccat_api.cli import main

main()
