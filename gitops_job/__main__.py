from gitops_job.cli.main import main

main()
