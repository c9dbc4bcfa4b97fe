from modscan.cli import main

main()
