"""Deploy tests: template.yaml, samconfig.toml, events/, the sam build output, and the AWS mode of the CLI,
checked on a machine with no Docker and no AWS account (moto stands in for AWS, PostgreSQL is real)."""
