from workers.dlq.cli import main

main()
