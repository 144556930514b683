"""The risk policy and default-deny: plain rules that the workflow runs and the offline
analyser reads, so neither imports the other's package."""
