"""Stand-in service binary of the example release."""

def main() -> None:
    print("acme-service 1.4.2")


if __name__ == "__main__":
    main()
