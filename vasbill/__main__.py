from vasbill.cli import main

main()
