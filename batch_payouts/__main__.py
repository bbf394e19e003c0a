from batch_payouts.cli import main

main()
